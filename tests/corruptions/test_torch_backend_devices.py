"""The torch backend draws every random number on the CPU from the image's seeded generator, so
the same seed gives the same table on any device (CUDA generators' streams differ from the
CPU's). Shown on this CPU machine with the ``meta`` device standing in for a GPU: every draw a
corruption makes must come from a CPU generator and be made on the CPU."""

from __future__ import annotations

import pytest
import torch

from imagenet_hard.corruptions.torch_backend import corrupt_torch

#: shot_noise is left out: its Poisson rates are the image's values, which meta does not have; it
#: moves the image to the CPU for the draw.
RANDOM = ["gaussian_noise", "impulse_noise", "speckle_noise", "glass_blur",
          "motion_blur", "elastic_transform", "snow", "frost", "fog", "spatter"]


@pytest.fixture
def draws(monkeypatch):
    seen = []
    for fn in ("rand", "randn", "randint", "poisson"):
        real = getattr(torch, fn)

        def spy(*args, _real=real, _fn=fn, **kwargs):
            gen = kwargs.get("generator")
            if gen is not None:
                device = kwargs.get("device")
                if _fn == "poisson":
                    device = args[0].device
                seen.append((_fn, gen.device.type, torch.device(device or "cpu").type))
            return _real(*args, **kwargs)

        monkeypatch.setattr(torch, fn, spy)
    return seen


@pytest.mark.parametrize("name", RANDOM)
def test_random_draws_are_made_on_the_cpu_whatever_the_device(name, draws):
    images = torch.randint(0, 256, (2, 40, 48, 3), dtype=torch.uint8)
    try:
        corrupt_torch(images, name, 3, [1, 2], device="meta")
    except (NotImplementedError, RuntimeError) as exc:  # meta has no values to finish with
        if "Generator" in str(exc) or "generator" in str(exc):
            raise
    assert draws, f"{name}: no random draw made"
    assert all(gen == made == "cpu" for _, gen, made in draws), draws


@pytest.mark.parametrize("name", ["gaussian_noise", "fog", "glass_blur"])
def test_same_seed_same_bytes_whatever_the_batch(name):
    images = torch.randint(0, 256, (2, 40, 48, 3), dtype=torch.uint8)
    both = corrupt_torch(images, name, 2, [5, 6])
    assert torch.equal(both[1:], corrupt_torch(images[1:], name, 2, [6]))
