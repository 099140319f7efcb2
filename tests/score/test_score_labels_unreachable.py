"""No label within a submission's reach: a cheat that looks for the labels of what it scores
where the harness used to show them scores what a blind model scores in the sandbox, and 100 %
unconfined (the control: the routes are real). Route (a): the scored dataset's parquet in the
Hugging Face hub cache (``datasets--*``), which the sandbox mounted whole for weights; route
(b): the sample source's hand labels in the project package, which the sandbox mounted (the
whole checkout when installed editable). A copy of the labels where the sandbox does mount
(a model folder of the hub cache) stops the run before the child starts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from scoring_data import sandbox_tools, write_submission

from imagenet_hard import sandbox as sb
from imagenet_hard.errors import SandboxError
from imagenet_hard.score import RunOptions, score
from imagenet_hard.score.sets import folder_from_source

#: Answers class 0 (in no sample label) unless it finds labels; says which route worked.
CHEAT = '''
import glob, io, os
import numpy as np
from PIL import Image

METADATA = {"name": "Cheat"}

def thumb(im):
    return np.asarray(im.convert("L").resize((8, 8)), dtype=np.float64).ravel()

KNOWN = []   # (thumbnail, label)
try:   # route (b): the project's own sample labels, and the photos they name
    from importlib import resources
    from imagenet_hard.builders.sample import PHOTOS
    for package, res, label, _ in PHOTOS:
        with resources.as_file(resources.files(package).joinpath(res)) as f:
            KNOWN.append((thumb(Image.open(f)), label[0]))
    print("FOUND package labels", flush=True)
except Exception as exc:
    print("NO package labels:", type(exc).__name__, flush=True)
try:   # route (a): a labelled parquet anywhere in the hub cache
    import pyarrow.parquet as pq
    hub = os.environ.get("HF_HUB_CACHE") or os.path.join(os.environ["HF_HOME"], "hub")
    for path in glob.glob(os.path.join(hub, "**", "*.parquet"), recursive=True):
        t = pq.read_table(path).to_pylist()
        KNOWN += [(thumb(Image.open(io.BytesIO(r["image"]["bytes"]))), r["label"][0]) for r in t]
        print("FOUND hub labels", path, flush=True)
except Exception as exc:
    print("NO hub labels:", type(exc).__name__, flush=True)

class Cheat:
    def predict(self, images):
        out = np.zeros((len(images), 1000))
        for k, im in enumerate(images):
            label = 0
            if KNOWN:
                t = thumb(im)
                label = min(KNOWN, key=lambda kv: float(((kv[0] - t) ** 2).sum()))[1]
            out[k, label] = 1.0
        return out

def load(device):
    return Cheat()
'''


@pytest.fixture
def world(tmp_path, sample_home, isolated_home):
    """The sample scored from a folder, with a copy of its labelled parquet in the hub cache."""
    data = folder_from_source(sample_home / "sources" / "sample.parquet", tmp_path / "ds",
                              home=sample_home)
    parquet = next((data / "data").glob("*.parquet"))
    snap = Path(sb.hub_cache()) / "datasets--someone--imagenet-hard" / "snapshots" / "0" / "data"
    snap.mkdir(parents=True)
    shutil.copyfile(parquet, snap / parquet.name)
    return {"data": data, "parquet": parquet, "sub": write_submission(tmp_path, CHEAT)}


def _score(w, tool: str, lines: list[str]):
    opts = RunOptions(device="cpu", sandbox=tool, workers=0, batch_size=4, on_output=lines.append)
    return score(w["sub"], dataset=w["data"], options=opts)


def test_unconfined_cheat_reads_labels_by_both_routes(world):
    lines: list[str] = []
    run = _score(world, "none", lines)
    out = "\n".join(lines)
    assert "FOUND package labels" in out and "FOUND hub labels" in out, out
    assert run.result.metrics["accuracy"] == pytest.approx(1.0)


@pytest.mark.parametrize("tool", sandbox_tools())
def test_sandboxed_cheat_scores_what_a_blind_model_scores(world, tool):
    lines: list[str] = []
    run = _score(world, tool, lines)
    out = "\n".join(lines)
    assert "NO package labels: ModuleNotFoundError" in out, out
    assert "FOUND" not in out, out
    assert run.result.metrics["accuracy"] == 0.0     # class 0, in no sample label


@pytest.mark.parametrize("tool", sandbox_tools())
def test_a_copy_of_the_labels_in_a_weight_folder_stops_the_run(world, tool):
    weights = Path(sb.hub_cache()) / "models--someone--weights" / "blobs"
    weights.mkdir(parents=True)
    shutil.copyfile(world["parquet"], weights / "0123abcd")
    lines: list[str] = []
    with pytest.raises(SandboxError) as err:
        _score(world, tool, lines)
    message = str(err.value)
    assert "0123abcd" in message and "holds labels" in message and "\n" not in message
    assert lines == []      # refused before the child started


def test_a_dataset_folder_inside_a_mount_is_refused(world, tmp_path):
    inside = Path(sb.hub_cache()) / "models--someone--weights" / "ds"
    shutil.copytree(world["data"], inside)
    with pytest.raises(SandboxError, match="holds labels of the data being scored"):
        _score({**world, "data": inside}, "auto", [])


def test_the_child_runs_a_copy_without_data_or_labels(tmp_path):
    """The worker copy holds Python modules only, none of which defines a source's rows."""
    modules = sb._worker_modules()
    assert "score/worker.py" in modules and "models/__init__.py" in modules
    assert all(m.endswith(".py") for m in modules)
    for banned in ("sources", "records", "builders", "review", "publish", "mining", "harness",
                   "runner", "dataset"):
        assert not any(Path(m).stem == banned or m.startswith(banned + "/") for m in modules), \
            modules
    dest = sb.worker_package(str(tmp_path / "copy"))
    files = sorted(str(p.relative_to(dest)) for p in Path(dest).rglob("*") if p.is_file())
    assert all(f.endswith(".py") for f in files), files


def test_the_checkout_is_not_mounted(monkeypatch):
    """``python -m pytest`` puts the checkout on the import path; it must not become a mount."""
    checkout = str(Path(__file__).resolve().parents[2])
    monkeypatch.syspath_prepend(checkout)
    monkeypatch.syspath_prepend(os.path.join(checkout, "tests"))
    paths = sb._python_paths()
    assert not any(p == checkout or p.startswith(checkout + "/tests") for p in paths), paths
    plan = sb.make_plan([], [], {})
    try:
        covered = {m.dest: m.src for m in plan.mounts}
        for folder in sb._package_folders():
            assert folder not in covered or covered[folder].endswith(".empty"), folder
    finally:
        plan.cleanup()
