"""One rule for the weight caches: the models, the scoring sandbox and ``doctor`` read the hub
cache and torch's home from :mod:`imagenet_hard.models.weights`, by huggingface_hub's and torch's
own rules (issue 20: three copies had drifted; one ignored ``HUGGINGFACE_HUB_CACHE``)."""

from __future__ import annotations

from imagenet_hard import doctor, sandbox
from imagenet_hard.models import weights


def test_hub_cache_and_torch_home_follow_the_libraries_rules(monkeypatch, tmp_path):
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "TORCH_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert weights.hub_cache() == str(tmp_path / "xdg" / "huggingface" / "hub")
    assert weights.torch_home() == str(tmp_path / "xdg" / "torch")
    assert weights.torch_checkpoints() == str(tmp_path / "xdg" / "torch" / "hub" / "checkpoints")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert weights.hub_cache() == str(tmp_path / "hf" / "hub")
    monkeypatch.setenv("HUGGINGFACE_HUB_CACHE", str(tmp_path / "legacy"))
    assert weights.hub_cache() == str(tmp_path / "legacy")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert weights.hub_cache() == str(tmp_path / "hub")


def test_the_sandbox_and_doctor_read_the_one_rule():
    assert sandbox.hub_cache is weights.hub_cache is doctor.hub_cache
    assert sandbox.torch_home is weights.torch_home
    assert sandbox.torch_checkpoints is weights.torch_checkpoints is doctor.torch_checkpoints
