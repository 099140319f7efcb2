"""A stand-in for torch.distributed's store, shared by the job-engine and suite-over-ranks
tests."""


class FakeStore:
    """torch.distributed's store as the ranks share it: ``add`` returns the new value."""

    def __init__(self):
        self.values = {}

    def add(self, key, n):
        self.values[key] = self.values.get(key, 0) + n
        return self.values[key]
