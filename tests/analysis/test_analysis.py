"""The zoom analyses: every statistic on masks with known answers, the one-crop column, the
report, plots and `imhard analyze`."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from imagenet_hard import zoom
from imagenet_hard.analysis import (
    NotExhaustiveError,
    RunMasks,
    analyze,
    greedy_cover,
    masks_from_table,
)
from imagenet_hard.analysis.stats import group_solves, per_anchor, per_scale
from imagenet_hard.mining import SHARD_SCHEMA

T = zoom.N_TRANSFORMS


def masks(n: int, solves: dict[int, list[int]]) -> np.ndarray:
    """(n, 324) bool: transform t is correct on the images ``solves[t]``."""
    out = np.zeros((n, T), dtype=bool)
    for t, images in solves.items():
        out[images, t] = True
    return out


def reference_cover(correct: np.ndarray) -> tuple[list[int], list[int]]:
    """The textbook greedy set cover on Python sets, ties to the lowest transform index."""
    sets = [set(np.flatnonzero(correct[:, t]).tolist()) for t in range(correct.shape[1])]
    left = set().union(*sets)
    picked, gains = [], []
    while left:
        best = max(range(len(sets)), key=lambda t: (len(sets[t] & left), -t))
        picked.append(best)
        gains.append(len(sets[best] & left))
        left -= sets[best]
    return picked, gains


def test_greedy_cover_on_a_hand_checked_instance_with_ties():
    # t5 {0,1,2} and t7 {2,3,4} tie at 3: the lower index, 5, goes first. Then t7 and t10 both
    # add {3,4}: 7 wins the tie. t20 adds {5}. t3 {0} is never needed; image 6 is unsolvable.
    # Sorting by column sums would pick 5, 7, 10; the greedy cover recounts and skips 10.
    c = masks(7, {5: [0, 1, 2], 7: [2, 3, 4], 10: [3, 4], 20: [5], 3: [0]})
    cover = greedy_cover(c)
    assert cover.transforms == (5, 7, 20) and cover.gains == (3, 2, 1)
    assert cover.size == 3 and cover.solved == 6 and cover.images == 7
    assert cover.accuracy_at(1) == pytest.approx(3 / 7)
    assert cover.accuracy_at(2) == pytest.approx(5 / 7)
    assert cover.accuracy_at(36) == pytest.approx(6 / 7)
    assert cover.curve().tolist() == pytest.approx([3 / 7, 5 / 7, 6 / 7])


def test_greedy_cover_matches_the_textbook_algorithm_on_random_masks():
    rng = np.random.default_rng(3)
    for n in (1, 63, 64, 65, 130, 700):   # word boundaries of the bit packing
        p = rng.uniform(0, 0.03, size=T)
        c = rng.random((n, T)) < p
        cover = greedy_cover(c)
        picked, gains = reference_cover(c)
        assert list(cover.transforms) == picked and list(cover.gains) == gains
        assert cover.solved == int(c.any(axis=1).sum())


def test_greedy_cover_of_nothing_solved_is_empty():
    cover = greedy_cover(np.zeros((5, T), dtype=bool))
    assert cover.transforms == () and cover.accuracy_at(36) == 0.0
    assert greedy_cover(np.zeros((0, T), dtype=bool)).size == 0


def test_zoom_groups_solves_and_exclusive_solves():
    zin = zoom.transform_index(256, 0, 0)       # zoom-in
    zin2 = zoom.transform_index(1024, 2, 2)     # zoom-in, never needed by the cover
    zout = zoom.transform_index(64, 1, 1)       # zoom-out
    z224 = zoom.transform_index(224, 0, 1)      # zoom-224
    # image: 0 in only; 1 out only; 2 224 only; 3 in and out; 4 nothing
    c = masks(5, {zin: [0, 3], zout: [1, 3], z224: [2], zin2: [0]})
    g = group_solves(c)
    assert g["zoom-in"] == {"solves": 2 / 5, "only": 1 / 5}
    assert g["zoom-out"] == {"solves": 2 / 5, "only": 1 / 5}
    assert g["zoom-224"] == {"solves": 1 / 5, "only": 1 / 5}
    # Within the cover: image 3 is solved by the zoom-in crop (4 images to 2, chosen first) and
    # a zoom-out crop that stays out of the cover, so there it counts as zoom-in only.
    c2 = masks(6, {zin: [0, 3, 5], zout + 1: [3], zout: [1], z224: [2]})
    cover = greedy_cover(c2)
    assert zout + 1 not in cover.transforms and zin in cover.transforms
    within = np.zeros(T, dtype=bool)
    within[list(cover.transforms)] = True
    assert group_solves(c2)["zoom-in"]["only"] == pytest.approx(2 / 6)
    assert group_solves(c2, within)["zoom-in"]["only"] == pytest.approx(3 / 6)


def test_per_anchor_and_per_scale():
    centre_256 = zoom.transform_index(256, 1, 1)
    c = masks(4, {
        centre_256: [0, 1],
        zoom.transform_index(10, 1, 1): [1, 2],     # centre again, another scale: image 2 new
        zoom.transform_index(512, 0, 2): [3],       # top-right anchor
        zoom.transform_index(512, 2, 0): [0],       # bottom-left anchor
    })
    anchors = np.array(per_anchor(c))
    want = np.zeros((3, 3))
    want[1, 1], want[0, 2], want[2, 0] = 3 / 4, 1 / 4, 1 / 4
    assert np.allclose(anchors, want)
    best, centre = per_scale(c)
    s = {scale: k for k, scale in enumerate(zoom.SCALES)}
    assert best[s[256]] == 2 / 4 and best[s[10]] == 2 / 4 and best[s[512]] == 2 / 4
    assert centre[s[256]] == 2 / 4 and centre[s[512]] == 0.0
    assert sum(best) == pytest.approx(6 / 4)


def test_analyze_per_origin_with_known_numbers():
    std = zoom.STANDARD_CROP_INDEX
    zin = zoom.transform_index(448, 1, 1)
    # origin a: 4 images, 1-crop right on 0; zoom-in on 0, 1; image 2, 3 unsolved
    # origin b: 2 images, zoom-in on both
    c = masks(6, {std: [0], zin: [0, 1, 4, 5]})
    origins = np.array(["a", "a", "a", "a", "b", "b"], dtype=object)
    one = np.array([True, True, False, False, False, True])
    res = {r.name: r for r in analyze(RunMasks(c, origins, one_crop=one))}
    assert list(res) == ["all", "a", "b"]
    a, b, everything = res["a"], res["b"], res["all"]
    assert a.images == 4 and a.one_crop_paper == 1 / 4 and a.one_crop_standard == 2 / 4
    assert a.max_accuracy == 2 / 4 and a.cover == [zin] and a.cover_accuracy["1"] == 2 / 4
    assert b.max_accuracy == 1.0 and b.one_crop_paper == 0.0 and b.one_crop_standard == 1 / 2
    assert everything.max_accuracy == 4 / 6 and everything.cover_size == 1
    assert everything.cover_accuracy == {"1": 4 / 6, "9": 4 / 6, "36": 4 / 6, "all": 4 / 6}
    assert everything.groups["zoom-in"]["only"] == 4 / 6   # S=256 is a zoom-in scale too
    assert everything.to_dict()["cover_size"] == 1
    # one origin: a single analysis named after it
    single = analyze(RunMasks(c[:4], origins[:4]))
    assert [r.name for r in single] == ["a"] and single[0].one_crop_standard is None


def _table(rows: list[dict]) -> pa.Table:
    full = [{name: row.get(name) for name in SHARD_SCHEMA.names} for row in rows]
    return pa.Table.from_pylist(full, schema=SHARD_SCHEMA)


def test_masks_from_a_results_table_and_early_exit_refused():
    m = [False] * T
    m[7] = True
    table = _table([{"id": "x/1", "origin": "x", "mask": m, "one_crop_correct": True},
                    {"id": "x/2", "origin": "x", "mask": [False] * T, "one_crop_correct": False}])
    got = masks_from_table(table, "r")
    assert got.correct.shape == (2, T) and got.correct[0, 7] and got.correct.sum() == 1
    assert got.one_crop.tolist() == [True, False] and got.ids == ("x/1", "x/2")
    early = _table([{"id": "x/1", "origin": "x", "mask": None}])
    with pytest.raises(NotExhaustiveError, match="--exhaustive"):
        masks_from_table(early, "r", {"sources": ["sample"], "judge": "efficientnet-lite0"})
    old = _table([{"id": "x/1", "origin": "x", "mask": m, "one_crop_correct": None}])
    assert masks_from_table(old).one_crop is None
    short = _table([{"id": "x/1", "origin": "x", "mask": [True] * 5}])
    with pytest.raises(ValueError, match="324 verdicts"):
        masks_from_table(short)


# -- report, plots, `imhard analyze` -----------------------------------------------------------

def _synthetic(n: int = 400, seed: int = 0) -> RunMasks:
    rng = np.random.default_rng(seed)
    c = rng.random((n, T)) < rng.uniform(0, 0.04, size=T)
    origins = np.array(["imagenet_a", "../../escape|x"] * (n // 2), dtype=object)
    return RunMasks(c, origins, tuple(f"s/{k:05d}" for k in range(n)), rng.random(n) < 0.3,
                    run="synthetic", record={"judge": "j", "sources": ["a", "b"]})


def test_report_json_and_plots(tmp_path):
    import json

    from PIL import Image

    from imagenet_hard.analysis.report import write_analysis

    masks = _synthetic()
    out = tmp_path / "out"
    res = write_analysis(masks, out, order_splits=2)
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(["analysis.json", "report.md", "cover.png", "scales.png",
                              "anchors-all.png", "anchors-imagenet_a.png",
                              "anchors-..-..-escape-x.png"])
    assert not list(tmp_path.glob("*.png")) and not (tmp_path.parent / "escape").exists()
    for plot in res.plots:
        assert plot.parent == out and plot.stat().st_size > 5000
        with Image.open(plot) as im:
            im.verify()
        with Image.open(plot) as im:
            assert im.format == "PNG" and im.width > 300 and im.height > 300
    data = json.loads(res.json.read_text())
    want = [s.to_dict() for s in analyze(masks)]
    assert data["subsets"] == json.loads(json.dumps(want))
    assert data["run"] == "synthetic" and data["order"]["splits"] == 2
    text = res.report.read_text()
    for head in ("## Accuracy (Table 1)", "## Greedy minimum set cover (Table 2)",
                 "## Zoom groups (Table 3 / A1)", "## Maximum possible accuracy per anchor",
                 "## Accuracy per scale (Fig. 4)", "## Crop order for early-exit mining"):
        assert head in text
    assert "../../escape\\|x" in text      # a table cell cannot break the table
    assert f"| all | {len(masks)} |" in text


def _answer_by_padding(crops):
    """Class 1 when at least half a crop is zero padding (a far zoom-out), else class 2."""
    import torch

    padded = (crops == 0).all(dim=1).float().mean(dim=(1, 2)) >= 0.5
    return torch.where(padded, 1, 2)


@pytest.fixture(scope="module")
def scripted_runs(tmp_path_factory):
    """Two tiny noise sources mined by a scripted judge, exhaustively and with early exit."""
    from mining_support import SynthImage, make_source

    from imagenet_hard.judges import ScriptedJudge
    from imagenet_hard.mining import mine

    home = tmp_path_factory.mktemp("analysis_home")
    make_source(home, "syn_a", [SynthImage("p.png", (12, 9), (1,), 1),
                                SynthImage("q.png", (9, 12), (2,), 2)])
    make_source(home, "syn_b", [SynthImage("r.png", (10, 10), (3,), 3)])
    judge = ScriptedJudge(_answer_by_padding)
    for exhaustive in (True, False):
        mine(["syn_a", "syn_b"], judge, home=home, run=f"ex-{exhaustive}", exhaustive=exhaustive,
             device="cpu", workers=0, batch_size=128)
    return home


def test_cli_analyze_an_exhaustive_run(scripted_runs, tmp_path):
    import json

    from click.testing import CliRunner

    from imagenet_hard.cli import main
    from imagenet_hard.mining import open_run

    out = tmp_path / "report"
    res = CliRunner().invoke(main, ["analyze", "ex-True", "--out", str(out),
                                    "--home", str(scripted_runs)])
    assert res.exit_code == 0, res.output
    assert f"report: {out / 'report.md'}" in res.output and "greedy cover" in res.output
    data = json.loads((out / "analysis.json").read_text())
    assert [s["name"] for s in data["subsets"]] == ["all", "syn_a", "syn_b"]
    table = open_run("ex-True", scripted_runs).results()
    c = masks_from_table(table).correct
    assert data["subsets"][0]["cover"] == list(greedy_cover(c).transforms)
    # the masks are the judge's rule applied to the paper's crops
    from PIL import Image

    from imagenet_hard import zoom

    with Image.open(scripted_runs / "sources" / "syn_a" / "p.png") as im:
        rule = (_answer_by_padding(zoom.zoom_crops(im)) == 1).numpy()
    assert np.array_equal(c[table.column("id").to_pylist().index("syn_a/p.png")], rule)
    assert data["subsets"][1]["max_accuracy"] == 1.0
    assert data["run_record"]["sources"] == ["syn_a", "syn_b"]
    assert data["subsets"][0]["one_crop_standard"] is not None


def test_cli_analyze_refuses_an_early_exit_run(scripted_runs):
    from click.testing import CliRunner

    from imagenet_hard.cli import main

    res = CliRunner().invoke(main, ["analyze", "ex-False", "--home", str(scripted_runs)])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "imhard mine --source syn_a,syn_b --judge scripted --exhaustive" in res.output
    missing = CliRunner().invoke(main, ["analyze", "nope", "--home", str(scripted_runs)])
    assert missing.exit_code == 1 and "nope" in missing.output
    assert not (scripted_runs / "analysis").exists()


def test_bench_analyze_runs_and_covers_agree():
    from click.testing import CliRunner

    from imagenet_hard.cli import main

    res = CliRunner().invoke(main, ["bench", "analyze", "--images", "300"])
    assert res.exit_code == 0, res.output
    assert "bench analyze: greedy minimum set cover" in res.output
    assert "same cover: yes" in res.output and "images 300" in res.output
