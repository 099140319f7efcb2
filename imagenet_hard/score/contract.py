"""The submission contract (stated in full in docs/scoring.md): one ``.py`` file defining either
``load(device)`` returning an object whose ``predict(images)`` gives ``(len(images), 1000)``
logits or probabilities, or module-level ``model`` and ``transform`` (the harness batches, runs
``model.eval()`` under ``torch.inference_mode()``), plus an optional ``METADATA`` dict checked by
:func:`metadata_problems`. Runs inside the child.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..labels import NUM_CLASSES


class ContractError(Exception):
    """The submission file does not follow the contract (message says what to define)."""


@dataclass
class Submission:
    module: object
    form: str                 # "predict" or "model"
    metadata: dict

    @property
    def seed(self) -> int:
        try:
            return int(self.metadata.get("seed", 0) or 0)
        except (TypeError, ValueError):
            return 0


def import_file(path: str | Path):
    """Execute the submission file as module ``submission`` (its directory goes on sys.path)."""
    path = Path(path).resolve()
    spec = importlib.util.spec_from_file_location("submission", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["submission"] = module
    sys.path.insert(0, str(path.parent))
    spec.loader.exec_module(module)
    return module


#: Longest text a board shows; longer values are refused rather than cut.
MAX_NAME, MAX_URL, MAX_METADATA = 100, 2000, 10_000
#: Largest plausible parameter count and input side: a board sorts and compares by them, so a
#: finite but absurd number (``1e308``) would be shown as a real one.
MAX_PARAMS, MAX_RESOLUTION = 10**13, 100_000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _is_number(x) -> bool:
    if isinstance(x, bool):
        return False
    # an int is finite however large, and math.isfinite cannot take one beyond float range
    return isinstance(x, int) or (isinstance(x, float) and math.isfinite(x))


def _is_count(x, most: int) -> bool:
    """A whole number from 1 to ``most`` (``4.8e8`` counts: people write counts that way)."""
    return _is_number(x) and x == int(x) and 1 <= x <= most


def _url_problem(key: str, value) -> str | None:
    if not isinstance(value, str) or len(value) > MAX_URL or _CONTROL.search(value) or " " in value:
        return f"{key} must be a URL of at most {MAX_URL} characters without spaces"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"{key} must be an http(s) URL, got {value[:60]!r}"
    return None


def metadata_problems(meta: dict) -> list[str]:
    """What is wrong with a METADATA dict: the one rule the child (at import), results and the
    leaderboard apply. Known keys are typed; every value must serialise to JSON."""
    out = []
    try:
        size = len(json.dumps(meta, allow_nan=False))
    except (TypeError, ValueError) as exc:
        out.append(f"METADATA must be JSON-serialisable: {exc}")
    else:
        if size > MAX_METADATA:
            out.append(f"METADATA is {size} characters; at most {MAX_METADATA}")
    for key, value in meta.items():
        bad = None
        if key == "name" and (not isinstance(value, str) or not 0 < len(value) <= MAX_NAME
                              or _CONTROL.search(value)):
            bad = f"name must be text of 1–{MAX_NAME} characters without control characters"
        elif key in ("url", "paper"):
            bad = _url_problem(key, value)
        elif key in ("uses_tta", "extra_training_data") and not isinstance(value, bool):
            bad = f"{key} must be true or false"
        elif key == "params" and not _is_count(value, MAX_PARAMS):
            bad = f"params must be a whole number of parameters from 1 to {MAX_PARAMS:,}"
        elif key == "resolution" and not _is_count(value, MAX_RESOLUTION):
            bad = f"resolution must be a whole number of pixels from 1 to {MAX_RESOLUTION:,}"
        elif key == "seed" and not (isinstance(value, int) and not isinstance(value, bool)):
            bad = "seed must be an integer"
        if bad:
            out.append(f"METADATA[{key!r}]: {bad}, got {value!r:.80}")
    return out


def check_metadata(meta) -> dict:
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise ContractError(f"METADATA must be a dict, got {type(meta).__name__}")
    problems = metadata_problems(meta)
    if problems:
        raise ContractError("; ".join(problems))
    return dict(meta)


def inspect(module) -> Submission:
    """Which form the module follows, or a :class:`ContractError` naming what is missing."""
    meta = check_metadata(getattr(module, "METADATA", None))
    if callable(getattr(module, "load", None)):
        return Submission(module, "predict", meta)
    has_model, has_tf = hasattr(module, "model"), hasattr(module, "transform")
    if has_model and has_tf:
        if not callable(module.model) or not callable(module.transform):
            raise ContractError("`model` and `transform` must both be callable "
                                "(a torch.nn.Module and a PIL image → tensor function)")
        return Submission(module, "model", meta)
    if has_model or has_tf:
        raise ContractError(f"the file defines `{'model' if has_model else 'transform'}` but not "
                            f"`{'transform' if has_model else 'model'}`; define both, or `load(device)`")
    raise ContractError("the file defines neither `load(device)` (returning an object with "
                        "`predict(images)`) nor module-level `model` and `transform`")


def build_predictor(sub: Submission, device: str):
    """For the predict form: call ``load(device)`` and check the result has ``predict``."""
    obj = sub.module.load(device)
    if not callable(getattr(obj, "predict", None)):
        raise ContractError(f"load(device) returned {type(obj).__name__}, which has no "
                            "`predict(images)` method")
    return obj


def to_array(out, n: int):
    """The output as a float32 (n, 1000) numpy array, or a ContractError saying what is wrong."""
    import numpy as np

    if hasattr(out, "detach"):
        out = out.detach().float().cpu().numpy()
    try:
        arr = np.asarray(out, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ContractError(f"output of type {type(out).__name__} is not numeric: {exc}") from exc
    if arr.shape != (n, NUM_CLASSES):
        raise ContractError(f"wrong output shape {tuple(arr.shape)} for a batch of {n} images; "
                            f"expected ({n}, {NUM_CLASSES}): one row per image, one column per "
                            "ImageNet-1k class")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ContractError(f"output has NaN or infinite values in {len(rows)} of {n} rows "
                            f"(first: row {int(rows[0])} of the batch)")
    return arr
