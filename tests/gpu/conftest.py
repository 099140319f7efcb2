"""The ``gpu`` suite: every CUDA path of the project against its CPU twin. Marked ``gpu`` (not
run by ``make test``: pyproject's ``-m 'not gpu'``) and skipped where torch sees no CUDA device;
``make gpu-check`` runs it on a GPU machine and writes its outcome into one JSON report."""

from __future__ import annotations

import pytest
import torch

CUDA = torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    here = str(config.rootpath / "tests" / "gpu")
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.gpu)
            if not CUDA:
                item.add_marker(pytest.mark.skip(reason="no CUDA device"))


@pytest.fixture(scope="session")
def cuda():
    return torch.device("cuda", 0)


@pytest.fixture(autouse=True)
def _no_tf32():
    """fp32 comparisons with the CPU: TF32 off, as the project sets it for fp32 work."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
