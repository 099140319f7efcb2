"""The ``imagenet-c`` source: corrupted tables built from a base source, resumable, mineable."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from imagenet_hard import corruptions as C
from imagenet_hard.cli import main
from imagenet_hard.corruptions import build as B
from imagenet_hard.errors import ImHardError, InvalidValueError, MissingFileError
from imagenet_hard.records import SOURCE_SCHEMA, read_table
from imagenet_hard.sources import build_derived

SAMPLE_IDS = ["sample/n02123045/chelsea.png", "sample/n02389026/horse.png",
              "sample/n02708093/clock_motion.png"]


@pytest.fixture
def home(sample_home, isolated_home):
    """This test's data home holding the built sample source."""
    shutil.copytree(Path(sample_home) / "sources", isolated_home / "sources")
    return isolated_home


def make(home, **options):
    options = {"base": "sample", "workers": 0, **options}
    return build_derived("imagenet-c", home=home, **options)


def snapshot(home: Path) -> dict[str, bytes]:
    """Every file the imagenet-c build wrote (tables, rejects, images), by relative path."""
    sources = home / "sources"
    files = [*sources.glob("imagenet_c_*.parquet"), *(sources / "imagenet_c").rglob("*")]
    return {p.relative_to(home).as_posix(): p.read_bytes() for p in files if p.is_file()}


def test_tables_rows_files_and_seeds(home):
    results = make(home, corruptions="fog,gaussian_noise", severities="2")
    assert [r.name for r in results] == ["imagenet-c/fog/2", "imagenet-c/gaussian_noise/2"]
    assert all(r.kept == 9 and r.rejected == 0 and not r.skipped for r in results)
    base = {r["id"]: r for r in read_table(home / "sources" / "sample.parquet").to_pylist()}
    table = read_table(home / "sources" / "imagenet_c_fog_2.parquet")
    assert table.schema.remove_metadata() == SOURCE_SCHEMA
    for row in table.to_pylist():
        base_id = row["id"].removeprefix("imagenet_c/fog/2/")
        src = base[base_id]
        assert row["origin"] == "imagenet_c/fog/2"
        assert row["path"] == "sources/imagenet_c/fog/2/" + str(Path(base_id).with_suffix(".jpg"))
        assert (row["label"], row["english_label"], row["label_space"]) == \
            (src["label"], src["english_label"], src["label_space"])
        assert (row["width"], row["height"]) == (src["width"], src["height"])
        data = (home / row["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
        # the bytes are the documented seed's corruption, saved as ImageNet-C did (JPEG q85)
        with Image.open(home / src["path"]) as im:
            arr = np.asarray(im.convert("RGB"))
        seed = int.from_bytes(hashlib.sha256(f"{base_id}|fog|2".encode()).digest()[:4], "big")
        want = C.corrupt(arr, "fog", 2, seed)
        buf = io.BytesIO()
        Image.fromarray(want).save(buf, format="JPEG", quality=85, optimize=True)
        assert data == buf.getvalue()
    meta = json.loads(table.schema.metadata[b"imagenet_hard.imagenet_c"])
    assert meta["base"] == "sample" and meta["backend"] == "reference"
    assert meta["jpeg_quality"] == 85 and meta["image_format"] == "jpeg"
    assert "sha256" in meta["seed_rule"] and meta["base_images"] == 9
    assert {"imagecorruptions-imaug", "numpy", "scikit-image", "pillow"} <= set(meta["versions"])
    assert table.schema.metadata[b"imagenet_hard.source"] == b"imagenet_c_fog_2"
    assert not (home / "sources" / "imagenet_c" / ".shards" / "imagenet_c_fog_2").exists()


def test_rerun_is_a_no_op_and_force_rebuilds(home):
    make(home, corruptions="contrast", severities="1", limit=2)
    before = snapshot(home)
    mtimes = {p: (home / p).stat().st_mtime_ns for p in before}
    again = make(home, corruptions="contrast", severities="1", limit=2)
    assert again[0].skipped and again[0].kept == 2
    assert {p: (home / p).stat().st_mtime_ns for p in before} == mtimes
    with pytest.raises(InvalidValueError, match="already built with base_images 2; pass --force"):
        make(home, corruptions="contrast", severities="1")
    forced = make(home, corruptions="contrast", severities="1", force=True)
    assert not forced[0].skipped and forced[0].kept == 9


def test_png_is_lossless(home):
    make(home, corruptions="shot_noise", severities="4", image_format="png", limit=2)
    for row in read_table(home / "sources" / "imagenet_c_shot_noise_4.parquet").to_pylist():
        base_id = row["id"].removeprefix("imagenet_c/shot_noise/4/")
        assert row["path"].endswith(".png")
        src = next((home / "sources").glob(base_id))
        with Image.open(src) as im:
            want = C.corrupt(np.asarray(im.convert("RGB")), "shot_noise", 4,
                             C.image_seed(base_id, "shot_noise", 4))
        with Image.open(home / row["path"]) as im:
            assert np.array_equal(np.asarray(im), want)


class Crash(Exception):
    pass


def _crash_after(monkeypatch, k: int) -> list:
    done = []
    real = B.run_shard

    def run_shard(task):
        if len(done) == k:
            raise Crash(f"simulated crash after {k} shards")
        done.append(task.index)
        return real(task)

    monkeypatch.setattr(B, "run_shard", run_shard)
    return done


def test_a_crashed_build_resumes_to_the_same_bytes(home, tmp_path, monkeypatch):
    opts = {"corruptions": "snow,impulse_noise", "severities": "1,5", "shard_size": 2}
    other = tmp_path / "uninterrupted"
    shutil.copytree(home / "sources", other / "sources", symlinks=True)
    make(other, **opts)
    want = {p.replace(str(other), ""): b for p, b in snapshot(other).items()}

    done = _crash_after(monkeypatch, 7)
    with pytest.raises(Crash):
        make(home, **opts)
    assert len(done) == 7  # 5 shards per table: the first table finished, the second did not
    assert (home / "sources" / "imagenet_c_snow_1.parquet").exists()
    assert not (home / "sources" / "imagenet_c_snow_5.parquet").exists()
    assert len(list((home / "sources/imagenet_c/.shards/imagenet_c_snow_5").glob("shard-*"))) == 2
    monkeypatch.undo()
    resumed = make(home, **opts)
    assert [r.skipped for r in resumed] == [True, False, False, False]
    assert snapshot(home) == want


def test_resuming_with_other_settings_is_refused(home, monkeypatch):
    _crash_after(monkeypatch, 1)
    with pytest.raises(Crash):
        make(home, corruptions="fog", severities="1", shard_size=2)
    monkeypatch.undo()
    with pytest.raises(InvalidValueError, match=r"unfinished build was started with other "
                                   r"settings \(shard_size: build has 2, asked 3\).*--force"):
        make(home, corruptions="fog", severities="1", shard_size=3)
    assert make(home, corruptions="fog", severities="1", shard_size=3, force=True)[0].kept == 9


@pytest.mark.slow
def test_sigkill_mid_build_then_rerun_gives_the_same_bytes(home, tmp_path):
    """A real hard kill: the build process SIGKILLs itself after three shards."""
    args = ["build", "--source", "imagenet-c", "--from", "sample", "--corruptions",
            "glass_blur,frost", "--severities", "3", "--shard-size", "2", "--workers", "0"]
    other = tmp_path / "uninterrupted"
    shutil.copytree(home / "sources", other / "sources", symlinks=True)
    assert CliRunner().invoke(main, [*args, "--home", str(other)]).exit_code == 0
    killer = ("import os, signal, sys\n"
              "from imagenet_hard.corruptions import build as B\n"
              "from imagenet_hard.cli import main\n"
              "real, done = B.run_shard, []\n"
              "def run_shard(task):\n"
              "    if len(done) == 3:\n"
              "        os.kill(os.getpid(), signal.SIGKILL)\n"
              "    done.append(1)\n"
              "    return real(task)\n"
              "B.run_shard = run_shard\n"
              "main(sys.argv[1:])\n")
    proc = subprocess.run([sys.executable, "-c", killer, *args, "--home", str(home)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert len(list((home / "sources/imagenet_c/.shards").rglob("shard-*.parquet"))) == 3
    res = CliRunner().invoke(main, [*args, "--home", str(home)])
    assert res.exit_code == 0, res.output
    assert "built 2 tables (18 images, 0 rejected)" in res.output
    want = {p: b for p, b in snapshot(other).items()}
    assert snapshot(home) == want


def test_torch_backend_loader_workers_give_the_same_bytes(home, tmp_path):
    """The torch backend's DataLoader workers decode; each image's noise is still drawn from
    its own seeded generator, so the table is byte for byte that of the in-process build."""
    opts = {"backend": "torch", "device": "cpu", "corruptions": "gaussian_noise",
            "severities": "1", "shard_size": 1, "limit": 2}
    other = tmp_path / "serial"
    shutil.copytree(home / "sources", other / "sources", symlinks=True)
    make(other, **opts)
    res = make(home, **{**opts, "workers": 2})
    assert res[0].kept == 2
    assert snapshot(home) == snapshot(other)


@pytest.mark.slow
def test_worker_processes_give_the_same_bytes(home, tmp_path):
    opts = {"corruptions": "glass_blur,elastic_transform", "severities": "2", "shard_size": 3}
    other = tmp_path / "serial"
    shutil.copytree(home / "sources", other / "sources", symlinks=True)
    make(other, **opts)
    make(home, **{**opts, "workers": 2})
    assert snapshot(home) == snapshot(other)


@pytest.mark.slow
def test_two_process_torchrun_equals_one_process(home, tmp_path):
    args = ["build", "--source", "imagenet-c", "--from", "sample", "--corruptions",
            "motion_blur,pixelate", "--severities", "2", "--shard-size", "2", "--workers", "0"]
    other = tmp_path / "one"
    shutil.copytree(home / "sources", other / "sources", symlinks=True)
    assert CliRunner().invoke(main, [*args, "--home", str(other)]).exit_code == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "--master-port", str(_free_port()), "-m", "imagenet_hard", *args, "--home", str(home)],
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("built 2 tables") == 1  # only rank 0 prints
    assert snapshot(home) == snapshot(other)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _hostile_base(home: Path) -> None:
    """A ``sample`` table whose rows include a tiny image, a truncated file, and ids and paths
    that try to leave the data home (written with pyarrow, past SourceRow's checks)."""
    folder = home / "sources" / "sample" / "x"
    folder.mkdir(parents=True)
    Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(folder / "tiny.png")
    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(buf, format="PNG")
    (folder / "cut.png").write_bytes(buf.getvalue()[:60])
    (folder / "ok.png").write_bytes(buf.getvalue())
    (folder / "ok.jpg").write_bytes(buf.getvalue())
    (folder / "ok2.png").write_bytes(buf.getvalue())
    rows = [("sample/x/tiny.png", "sources/sample/x/tiny.png"),
            ("sample/x/cut.png", "sources/sample/x/cut.png"),
            ("sample/x/ok.png", "sources/sample/x/ok.png"),
            ("sample/x/ok.jpg", "sources/sample/x/ok.jpg"),
            ("sample/../../../../escape.png", "sources/sample/x/ok2.png"),
            ("sample/x/outside.png", "../../etc/hostname")]
    cols = {"id": [], "origin": [], "path": [], "label": [], "english_label": [],
            "label_space": [], "width": [], "height": [], "sha256": [], "label_paper": []}
    for rid, path in rows:
        for k, v in zip(cols, (rid, "sample", path, [281], ["tabby cat"], "in1k", 64, 64,
                               "0" * 64, None), strict=True):
            cols[k].append(v)
    schema = SOURCE_SCHEMA.with_metadata({b"imagenet_hard.schema_version": b"1"})
    pq.write_table(pa.table(cols, schema=schema), home / "sources" / "sample.parquet")


def test_unusable_and_hostile_base_rows_become_rejects(isolated_home):
    _hostile_base(isolated_home)
    res = make(isolated_home, corruptions="brightness", severities="1")[0]
    assert res.kept == 1 and res.rejected == 5
    reasons = {r["path"]: r["reason"] for r in pq.read_table(res.rejects).to_pylist()}
    assert "minimum of 32x32" in reasons["sources/sample/x/tiny.png"]
    assert "base image unreadable" in reasons["sources/sample/x/cut.png"]
    assert "already that of sample/x/ok.jpg" in reasons["sources/sample/x/ok.png"]
    assert "is not inside the data home" in reasons["../../etc/hostname"]
    assert "cannot name a file inside" in reasons["sources/sample/x/ok2.png"]
    written = [p for p in isolated_home.rglob("*") if p.is_file() and "imagenet_c" in str(p)]
    assert all(isolated_home in p.parents for p in written)
    assert not list(isolated_home.parent.glob("escape*"))


def test_bad_options_and_missing_base_say_what_to_do(home, isolated_home):
    with pytest.raises(InvalidValueError, match="one of imagenet-real, imagenet, sample"):
        make(home, base="imagenet-a")
    with pytest.raises(ImHardError, match="Did you mean: fog"):
        make(home, corruptions="fgo")
    with pytest.raises(InvalidValueError, match="severity must be one of"):
        make(home, severities="0-2")
    with pytest.raises(InvalidValueError, match="write severities"):
        make(home, severities="high")
    with pytest.raises(InvalidValueError, match="--format 'gif'"):
        make(home, image_format="gif")
    with pytest.raises(MissingFileError, match=r"`imhard build --source imagenet-real` first"):
        make(home, base="imagenet-real")
    assert not (isolated_home / "sources" / "imagenet_c").exists()  # nothing written


def test_ids_pick_the_base_images_and_a_wrong_one_writes_nothing(home, isolated_home):
    """`ids` (the demo's two photos) corrupts exactly those; an id the base lacks, or no id,
    is one sentence before anything is written."""
    for bad, says in ((("sample/n00000000/none.png",), "has no image 'sample/n00000000/none.png'"),
                      ((), "ids must name base images"), ("sample", "ids must name base images")):
        with pytest.raises(InvalidValueError, match=says):
            make(home, corruptions="contrast", severities="1", ids=bad)
    assert not (isolated_home / "sources" / "imagenet_c").exists()
    want = ("sample/n07920052/coffee.png", "sample/n02123045/chelsea.png")
    (table,) = make(home, corruptions="contrast", severities="1", ids=want)
    got = read_table(table.table).column("id").to_pylist()
    assert got == sorted(f"imagenet_c/contrast/1/{i}" for i in want)


@pytest.mark.parametrize("lacking", ["torch", "imagenet_hard.corruptions.torch_backend", "cuda"])
def test_torch_backend_missing_or_no_cuda_fails_before_writing(home, isolated_home, monkeypatch,
                                                               lacking):
    if lacking == "cuda":  # torch sees no GPU, whatever this machine has
        import torch

        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        with pytest.raises(InvalidValueError, match="torch sees no CUDA device"):
            make(home, backend="torch", device="cuda", corruptions="fog", severities="1")
    else:  # the module cannot be imported; the cached backend is dropped so it is imported again
        for name in [m for m in sys.modules
                     if m.startswith("imagenet_hard.corruptions.torch_backend")]:
            monkeypatch.delitem(sys.modules, name)
        monkeypatch.setitem(sys.modules, lacking, None)
        with pytest.raises(ImHardError,
                           match="torch corruption backend .* use backend 'reference'"):
            make(home, backend="torch", corruptions="fog", severities="1")
    assert not (isolated_home / "sources" / "imagenet_c").exists()
    assert snapshot(isolated_home) == {}  # no table, no image


def test_groups_and_severity_ranges():
    assert B.parse_corruptions("paper") == C.PAPER_SIX
    assert B.parse_corruptions("held-out,fog") == (*C.HELD_OUT, "fog")
    assert B.parse_corruptions("all") == C.NAMES
    assert B.parse_severities("1,3-5") == (1, 3, 4, 5)
    assert B.parse_severities("2") == (2,)


def test_cli_build_sources_and_option_checks(home):
    res = CliRunner().invoke(main, ["build", "--source", "imagenet-c", "--from", "sample",
                                    "--corruptions", "fog,frost", "--severities", "1",
                                    "--workers", "0", "--limit", "2"])
    assert res.exit_code == 0, res.output
    assert "imagenet-c: built 2 tables (4 images, 0 rejected), 0 already built" in res.output
    res = CliRunner().invoke(main, ["sources"])
    block = res.output[res.output.index("imagenet-c "):]
    assert "built, 4 rows" in block.splitlines()[0]
    assert "tables:  2 (mine them all with --source 'imagenet-c/*')" in block
    assert "imagenet-c/frost/1" in block and "from sample, reference backend, jpeg" in block
    res = CliRunner().invoke(main, ["build", "--source", "sample", "--corruptions", "fog"])
    assert res.exit_code == 2 and "--corruptions apply to derived sources" in res.output
    res = CliRunner().invoke(main, ["build", "--source", "imagenet-c", "--url", "http://x/y"])
    assert res.exit_code == 2 and "not downloaded" in res.output
    res = CliRunner().invoke(main, ["build", "--source", "imagenet-c", "--from", "sample",
                                    "--corruptions", "zoom"])
    assert res.exit_code == 1 and "Did you mean: zoom_blur" in res.output
    assert "Traceback" not in res.output


def test_source_patterns_and_names_resolve_to_tables(home):
    from imagenet_hard.catalog import file_stem, select
    from imagenet_hard.mining.plan import default_run_name, load_workload

    def expand_sources(items, home):
        return [r.stem for r in select(items, home, families=False)]

    make(home, corruptions="fog,snow", severities="1,2", limit=1)
    assert expand_sources(["imagenet-c/*"], home) == [
        "imagenet_c_fog_1", "imagenet_c_fog_2", "imagenet_c_snow_1", "imagenet_c_snow_2"]
    assert expand_sources(["imagenet-c/fog/*", "sample"], home) == [
        "imagenet_c_fog_1", "imagenet_c_fog_2", "sample"]
    assert expand_sources(["imagenet-c/snow/2", "imagenet-c-fog-1"], home) == [
        "imagenet_c_snow_2", "imagenet_c_fog_1"]
    assert file_stem("../../etc/passwd") == ".._.._etc_passwd"
    with pytest.raises(MissingFileError, match="matches no built source table"):
        expand_sources(["imagenet-c/frost/*"], home)
    with pytest.raises(MissingFileError, match=r"pass --source 'imagenet-c/\*'"):
        load_workload(["imagenet-c"], home)
    work = load_workload(["imagenet-c/*", "sample"], home)
    assert len(work.images) == 4 + 9
    names = [f"imagenet_c_{n}_{s}" for n in C.NAMES for s in C.SEVERITIES]
    run = default_run_name("efficientnet-lite0", names, False)
    assert len(run) < 160 and run.startswith("efficientnet-lite0__imagenet_c_gaussian_noise_1+94")


def test_corrupted_tables_mine_and_import_for_review(home):
    """End to end with a judge that always answers 'tabby cat': the corrupted cats are settled by
    their first crop, every other corrupted image survives all 324 crops."""
    import torch

    from imagenet_hard.judges import ScriptedJudge
    from imagenet_hard.mining import mine
    from imagenet_hard.review import ReviewStore

    make(home, corruptions="impulse_noise,zoom_blur", severities="3", limit=2)
    cat = ScriptedJudge(lambda crops: torch.full((crops.shape[0],), 281), name="cat")
    res = mine(["imagenet-c/*"], cat, home=home, device="cpu", run="c-run")
    cand = res.candidates().to_pylist()
    assert sorted(c["id"] for c in cand) == [
        "imagenet_c/impulse_noise/3/sample/n02389026/horse.png",
        "imagenet_c/zoom_blur/3/sample/n02389026/horse.png"]
    assert {c["origin"] for c in cand} == {"imagenet_c/impulse_noise/3", "imagenet_c/zoom_blur/3"}
    assert all(c["label"] == [339] for c in cand)
    counts = res.summary.per_origin["imagenet_c/zoom_blur/3"]
    assert (counts.images, counts.candidates) == (2, 1)
    with ReviewStore(home) as store:
        imported = store.import_run("c-run")
    assert imported.candidates == 2
