"""Finding model weights without hanging: where caches are, whether to try the network, clear
errors.

The workplace may have no internet. With ``IMHARD_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1``) no model
touches the network; otherwise a download gets a short connect timeout, and any failure becomes a
:class:`~imagenet_hard.errors.MissingWeightsError` that names the weights, where they were looked
for and how to provide them.
"""

from __future__ import annotations

import functools
import os
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import MissingWeightsError

CONNECT_TIMEOUT_S = 10.0


def offline() -> bool:
    """True when the user asked for no network (``IMHARD_OFFLINE`` or ``HF_HUB_OFFLINE``)."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("IMHARD_OFFLINE", "HF_HUB_OFFLINE"))


def hf_home() -> str:
    """huggingface_hub's home (its token lives there), by its own rule."""
    return os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")


def hub_cache() -> str:
    """Where huggingface_hub keeps downloaded repositories, by its own rule: the one place the
    models, the scoring sandbox and ``doctor`` read it from."""
    return os.path.expanduser(os.environ.get("HF_HUB_CACHE")
                              or os.environ.get("HUGGINGFACE_HUB_CACHE")
                              or os.path.join(hf_home(), "hub"))


def torch_home() -> str:
    """``torch.hub``'s home, by torch's own rule (``$TORCH_HOME``, else ``$XDG_CACHE_HOME/torch``)."""
    return os.path.expanduser(os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or "~/.cache", "torch"))


def torch_checkpoints() -> str:
    """Where torch.hub downloads checkpoints, by :func:`torch_home`'s rule and without importing
    torch: the one spelling the scoring sandbox (which mounts it), ``doctor`` and
    ``fetch-weights`` use."""
    return os.path.join(torch_home(), "hub", "checkpoints")


def torch_checkpoints_dir() -> Path:
    """:func:`torch_checkpoints` as torch itself answers it, for loaders about to download with
    torch: ``torch.hub.get_dir`` also honours ``torch.hub.set_dir`` in this process, and a
    loader must look where torch will write."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def missing(what: str, looked: list[str], provide: str, cause: BaseException | None = None
            ) -> MissingWeightsError:
    """A :class:`MissingWeightsError` in the one shape every model family uses."""
    why = f" ({type(cause).__name__}: {_first_line(cause)})" if cause is not None else ""
    net = " Network downloads are off (IMHARD_OFFLINE/HF_HUB_OFFLINE)." if offline() else ""
    return MissingWeightsError(
        f"weights for {what} are not available{why}. Looked in: {'; '.join(looked)}.{net} "
        f"To provide them: {provide}"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""


def reachable(url: str) -> bool:
    """Whether ``url``'s host answers within the connect timeout (probed once per process)."""
    return not offline() and _probe(url)


@functools.cache
def _probe(url: str) -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"),
                                    timeout=CONNECT_TIMEOUT_S):
            return True
    except urllib.error.HTTPError:
        return True  # the server answered, so the network works
    except (urllib.error.URLError, OSError, TimeoutError):
        return False


def hf_file(repo_id: str, filenames: list[str], what: str, provide: str) -> Path:
    """The first of ``filenames`` in hub repo ``repo_id``, from the cache or (when the hub answers)
    downloaded; the hub client's own retries would take half a minute per file offline."""
    from huggingface_hub import constants, hf_hub_download

    local_only = not reachable(constants.ENDPOINT)
    errors: list[BaseException] = []
    for name in filenames:
        try:
            # cache_dir from the environment now: the hub's constants are frozen at its import.
            return Path(hf_hub_download(repo_id, name, local_files_only=local_only,
                                        cache_dir=hub_cache()))
        except Exception as exc:  # missing file, offline, gated repo: try the next name
            errors.append(exc)
    looked = [f"{hub_cache()} (hub repo {repo_id}: {', '.join(filenames)})"]
    if local_only and not offline():
        looked.append(f"{constants.ENDPOINT} (unreachable)")
    raise missing(what, looked, provide, errors[-1] if errors else None)


def download(url: str, dest: Path, what: str, provide: str) -> Path:
    """Fetch ``url`` to ``dest`` (atomically), failing fast and clearly when offline."""
    from ..files import atomic_path

    looked = [str(dest)]
    # A short probe first: torch.hub's own download has no timeout and would hang offline.
    if not reachable(url):
        raise missing(what, looked + ([] if offline() else [f"{url} (unreachable)"]), provide)
    try:
        import torch.hub

        with atomic_path(dest) as tmp:
            torch.hub.download_url_to_file(url, str(tmp), progress=False)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise missing(what, looked + [url], provide, exc) from exc
    return dest
