"""`imhard sources` and `imhard doctor`, and a smoke test over every registered source."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from imagenet_hard import list_sources
from imagenet_hard.cli import main
from imagenet_hard.sources import get_source

EXPECTED = {"imagenet", "imagenet-real", "imagenet-a", "imagenet-r", "imagenet-sketch",
            "objectnet", "sample", "imagenet-c"}


def test_every_source_of_the_issue_is_registered():
    assert EXPECTED <= set(list_sources())


@pytest.mark.parametrize("name", list_sources())
def test_source_smoke(name):
    src = get_source(name)
    for attr in ("description", "licence", "citation", "homepage", "expected", "origin"):
        assert getattr(src, attr), f"{name} lacks {attr}"
    res = CliRunner().invoke(main, ["sources"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.split()[0] == name)
    block = "\n".join(lines[start:start + 5])
    assert src.label_space in lines[start]
    assert src.licence in block and src.expected in block
    if src.derived:
        assert src.made_from in block and "--from" in src.made_from
    elif src.default_url:
        assert src.default_url in block
    elif src.shipped_with:  # the sample: files installed packages ship, nothing to pass
        assert f"from:    {src.shipped_with}" in block and "--path only" not in block
    else:
        assert "--path only" in block


def test_sources_shows_local_status(sample_home):
    res = CliRunner().invoke(main, ["sources", "--home", str(sample_home)])
    line = next(ln for ln in res.output.splitlines() if ln.startswith("sample "))
    assert "built, 9 rows" in line
    other = next(ln for ln in res.output.splitlines() if ln.startswith("imagenet-a "))
    assert "not built" in other


def test_doctor_reports_torch_disk_sources_and_weights(sample_home, tmp_path):
    ckpt = tmp_path / "torch" / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    (ckpt / "resnet50-11ad3fa6.pth").write_bytes(b"\0" * 2 * 2**20)
    # A Hugging Face hub cache entry laid out as huggingface_hub writes it.
    repo = tmp_path / "hf" / "hub" / "models--timm--resnet50.a1_in1k"
    blob = repo / "blobs" / ("a" * 64)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"\0" * 3 * 2**20)
    snap = repo / "snapshots" / ("b" * 40)
    snap.mkdir(parents=True)
    os.symlink(os.path.relpath(blob, snap), snap / "model.safetensors")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("b" * 40)

    res = CliRunner().invoke(main, ["doctor", "--home", str(sample_home)])
    assert res.exit_code == 0, res.output
    import torch

    out = res.output
    assert f"torch: {torch.__version__}" in out and "CUDA:" in out
    assert "GiB free" in out and str(sample_home) in out
    assert "sample           built, 9 rows" in out
    assert "imagenet-a       not built" in out
    assert "resnet50-11ad3fa6.pth (2 MiB)" in out
    assert "timm/resnet50.a1_in1k (3 MiB)" in out
    assert "efficientnet-lite0-57934424.pth" in out


def test_doctor_tolerates_missing_caches_and_home(tmp_path):
    res = CliRunner().invoke(main, ["doctor", "--home", str(tmp_path / "not" / "yet")])
    assert res.exit_code == 0, res.output
    assert "none in the torch hub or Hugging Face caches" in res.output
    assert "not built" in res.output


@pytest.mark.parametrize("cmd", ["build", "sources", "doctor"])
def test_help_has_example(cmd):
    res = CliRunner().invoke(main, [cmd, "--help"])
    assert res.exit_code == 0 and "Example:" in res.output
