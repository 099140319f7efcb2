"""``imhard leaderboard push``: upload the static board to a Hugging Face Space (static SDK), so the
benchmark's dataset and its board live side by side. The token comes from ``HF_TOKEN`` or the
stored login and is never printed."""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ImHardError, InvalidValueError, MissingFileError

_SPACE = re.compile(r"^[A-Za-z0-9][\w.\-]*/[A-Za-z0-9][\w.\-]*$")

SPACE_HEADER = """---
title: ImageNet-Hard leaderboard
emoji: 🔎
colorFrom: green
colorTo: gray
sdk: static
app_file: index.html
pinned: false
---

"""


@dataclass
class Pushed:
    space: str
    url: str
    files: list[str]


def stage(board_dir: Path, dest: Path) -> list[str]:
    """The Space's files: the page, a README with the Space header, the results."""
    html = board_dir / "index.html"
    if not html.is_file():
        raise MissingFileError(f"{html} does not exist; run `imhard leaderboard build` first")
    shutil.copyfile(html, dest / "index.html")
    readme = board_dir / "README.md"
    body = readme.read_text(encoding="utf-8") if readme.exists() else ""
    (dest / "README.md").write_text(SPACE_HEADER + body, encoding="utf-8")
    results = board_dir / "results"
    if results.is_dir():
        shutil.copytree(results, dest / "results")
    return sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())


def push_board(space: str, board_dir: str | Path = "leaderboard", token: str | None = None,
               private: bool = False, api=None) -> Pushed:
    """Create (if needed) the static Space ``space`` and upload the built board to it."""
    if not _SPACE.match(space):
        raise InvalidValueError(f"--space {space!r} must be OWNER/NAME")
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)  # None: HF_TOKEN or the stored login
    with tempfile.TemporaryDirectory(prefix="imhard-space-") as tmp:
        files = stage(Path(board_dir), Path(tmp))
        try:
            api.create_repo(repo_id=space, repo_type="space", space_sdk="static",
                            exist_ok=True, private=private)
            api.upload_folder(folder_path=tmp, repo_id=space, repo_type="space",
                              commit_message="Update the ImageNet-Hard leaderboard")
        except Exception as exc:  # hub errors: HTTP, auth, offline; never echo the token
            msg = str(exc).replace(token, "***") if token else str(exc)
            raise ImHardError(f"uploading the board to Space {space} failed: "
                              f"{type(exc).__name__}: {msg.splitlines()[0] if msg else ''}. "
                              "Log in (`hf auth login`) or set HF_TOKEN with write access") from exc
    return Pushed(space, f"https://huggingface.co/spaces/{space}", files)
