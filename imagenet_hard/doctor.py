"""``imhard doctor``: what this machine has for the pipeline, gathered in one report.

Torch and CUDA, free disk at the data home, built sources with row counts, model weights cached
locally (torch hub checkpoints, Hugging Face hub repositories that timm and open_clip use, the
offline EfficientNet-Lite0 file) and whether ``unzip`` is there for ObjectNet. Nothing here
downloads or fails: a missing piece is reported as missing.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from . import home as homes
from .models.weights import hub_cache, torch_checkpoints
from .sizes import format_size


@dataclass
class Report:
    version: str
    torch: str | None
    cuda: str
    home: Path
    free_bytes: int
    sources: list[tuple[str, int | None]] = field(default_factory=list)
    torch_checkpoints: list[tuple[str, int]] = field(default_factory=list)
    hf_models: list[tuple[str, int]] = field(default_factory=list)
    efficientnet_lite0: str = ""
    unzip: str | None = None

    def lines(self) -> list[str]:
        out = [f"imagenet-hard {self.version}",
               f"torch: {self.torch or 'not installed'}; CUDA: {self.cuda}",
               f"data home: {self.home} ({format_size(self.free_bytes)} free)",
               "sources:"]
        for name, rows in self.sources:
            out.append(f"  {name:<16} " + (f"built, {rows} rows" if rows is not None
                                           else "not built"))
        out.append("cached weights:")
        for name, size in self.torch_checkpoints:
            out.append(f"  torch hub  {name} ({format_size(size)})")
        for repo, size in self.hf_models:
            out.append(f"  HF hub     {repo} ({format_size(size)})")
        if not (self.torch_checkpoints or self.hf_models):
            out.append("  none in the torch hub or Hugging Face caches")
        out.append(f"  offline    efficientnet-lite0: {self.efficientnet_lite0}")
        out.append(f"unzip: {self.unzip or 'missing (ObjectNet extraction will be ~33x slower)'}")
        return out


def _torch_status() -> tuple[str | None, str]:
    try:
        import torch
    except ImportError:
        return None, "unknown (torch not installed)"
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return torch.__version__, f"{len(names)} device(s): {', '.join(names)}"
    return torch.__version__, "not available (CPU only)"


def _free_bytes(path: Path) -> int:
    while not path.exists() and path != path.parent:
        path = path.parent  # the home may not exist yet: ask about the disk it will live on
    return shutil.disk_usage(path).free


def _torch_checkpoints() -> list[tuple[str, int]]:
    ckpt = Path(torch_checkpoints())
    if not ckpt.is_dir():
        return []
    return [(p.name, p.stat().st_size) for p in sorted(ckpt.iterdir()) if p.is_file()]


def _hf_models() -> list[tuple[str, int]]:
    cache = Path(hub_cache())
    if not cache.is_dir():
        return []
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir(cache)
    except Exception:  # a damaged or foreign cache must not break the report
        return []
    return sorted((r.repo_id, r.size_on_disk) for r in info.repos if r.repo_type == "model")


def _efficientnet() -> str:
    from .errors import MissingWeightsError
    from .models.efficientnet import efficientnet_lite0_file

    try:
        return str(efficientnet_lite0_file())
    except MissingWeightsError as exc:
        return f"missing ({exc})"


def diagnose(home=None) -> Report:
    from .sources import source_status

    home_dir = homes.data_home(home)
    torch_version, cuda = _torch_status()
    return Report(
        version=__version__, torch=torch_version, cuda=cuda, home=home_dir,
        free_bytes=_free_bytes(home_dir),
        sources=[(src.name, rows) for src, rows in source_status(home_dir)],
        torch_checkpoints=_torch_checkpoints(), hf_models=_hf_models(),
        efficientnet_lite0=_efficientnet(), unzip=shutil.which("unzip"),
    )
