"""Every test runs with its data home, HF caches and torch hub in a temporary folder."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("IMHARD_HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return home


@pytest.fixture(scope="session")
def sample_home(tmp_path_factory):
    """A data home with the offline ``sample`` source built once per session (read-only use)."""
    from imagenet_hard import build_source

    home = tmp_path_factory.mktemp("sample_home")
    build_source("sample", home=home)
    return home
