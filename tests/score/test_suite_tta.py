"""`imhard score --suite --tta MODE`: every set scored with zoom test-time augmentation under its
own protocol, checked against a hand computation; caches apart from the plain suite's; the mode
in the result, re-run by `verify`, named on the board; tampering refused."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import suite_data as sd
from click.testing import CliRunner
from PIL import Image

from imagenet_hard import zoom
from imagenet_hard.cli import main
from imagenet_hard.errors import ImHardError, InvalidValueError
from imagenet_hard.leaderboard import add_suite
from imagenet_hard.leaderboard.render import markdown
from imagenet_hard.leaderboard.suites import collect_board
from imagenet_hard.score import RunOptions
from imagenet_hard.score.metrics import correctness
from imagenet_hard.score.suite import load_suite, resolve_sets, score_suite, verify_suite
from imagenet_hard.score.tta import get_mode, restrict

MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
#: Class whose logit is 10× the crop's mean red, green, blue; and the class with a constant 5.
RED, GREEN, BLUE, FLAT = 6, 11, 559, 970

#: A model + transform submission whose logits are 10× the mean red, green and blue of the crop
#: it is shown (classes RED, GREEN, BLUE; ImageNet-A's A0 and A1, ObjectNet's folding chair)
#: and 5 for class FLAT (ImageNet val 2's label): zoom crops with zero padding or another part
#: of the photo change the vote, so TTA and the plain centre crop answer differently.
VOTE = f'''
import torch
from torchvision import transforms as T

MEAN, STD = {MEAN}, {STD}
METADATA = {{"name": "Colour vote", "uses_tta": False}}


class ColourVote(torch.nn.Module):
    def forward(self, x):
        raw = x * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)
        means = raw.mean(dim=(2, 3))
        out = torch.zeros(x.shape[0], 1000)
        out[:, {RED}], out[:, {GREEN}], out[:, {BLUE}] = (10 * means[:, k] for k in range(3))
        out[:, {FLAT}] = 5.0
        return out


model = ColourVote()
transform = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC),
                       T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)])
'''

OPTS = RunOptions(batch_size=18, workers=0)
MODE = get_mode("zoom-224-mean")
SETS = ["imagenet-a", "imagenet", "imagenet-real", "objectnet", "imagenet-c"]


def _hand_probs(image: Image.Image, mode) -> np.ndarray:
    """The aggregated 1000-way probabilities, without the harness's TTA code: the mining crops
    (:func:`zoom.zoom_crops`), the vote's logits, softmax per crop, mean or renormalised max."""
    crops = zoom.zoom_crops(image, mode.transforms).numpy().astype(np.float64) / 255
    means = crops.mean(axis=(2, 3))                                  # (K, 3)
    logits = np.zeros((len(crops), 1000))
    logits[:, [RED, GREEN, BLUE]] = 10 * means
    logits[:, FLAT] = 5.0
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    if mode.aggregate == "mean":
        return p.mean(axis=0)
    top = p.max(axis=0)
    return top / top.sum()


def _hand_set(s, home, mode) -> tuple[list[list[int]], list[list[float]], int]:
    """Per scored row of set ``s``: the top-5 within the protocol's classes (renormalised over
    them, ties to the lower index), their probabilities; and how many rows are right."""
    table = pq.read_table(home / s.source)
    paths = dict(zip(table.column("id").to_pylist(), table.column("path").to_pylist(), strict=True))
    top5s, probs = [], []
    for i in s.scored:
        image = Image.open(home / paths[s.all.ids[int(i)].as_py()]).convert("RGB")
        b = s.protocol.border                                        # ObjectNet: 2 px
        if b:
            image = image.crop((b, b, image.width - b, image.height - b))
        agg = _hand_probs(image, mode)
        classes = list(range(1000)) if s.classes is None else list(s.classes)
        sub = agg[classes] / agg[classes].sum()
        order = sorted(range(len(classes)), key=lambda k: (-sub[k], classes[k]))[:5]
        top5s.append([classes[k] for k in order])
        probs.append([float(sub[k]) for k in order])
    right, _ = correctness(np.array(top5s), s.rows().labels)
    return top5s, probs, int(right.sum())


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The small built suite tables, the vote submission, its TTA suite and its plain suite."""
    root = tmp_path_factory.mktemp("suite_tta")
    home = root / "home"
    sd.build_all(home, root / "src")
    sub = sd.write_submission(root / "subs", VOTE, "vote.py")
    tta = score_suite(sub, sets=SETS, home=home, options=OPTS, tta=MODE)
    plain = score_suite(sub, sets=SETS, home=home, options=OPTS)
    return {"root": root, "home": home, "sub": sub, "tta": tta, "plain": plain}


def test_every_set_is_the_hand_computed_aggregate_under_its_own_protocol(world):
    home, run = world["home"], world["tta"]
    sets = resolve_sets(SETS, home=home)
    assert [e["name"] for e in run.result.sets] == [s.name for s in sets]
    got, want = {}, {}
    for s in sets:
        entry = run.result.entry(s.name)
        preds = pq.read_table(run.path.parent / entry["predictions"]["file"]).to_pylist()
        top5s, probs, right = _hand_set(s, home, MODE)
        assert [p["top5"] for p in preds] == top5s, s.name
        for p, q in zip(preds, probs, strict=True):
            assert p["top5_prob"] == pytest.approx(q, abs=2e-6)
        got[s.name] = (entry["metrics"]["n"], entry["metrics"]["correct"])
        want[s.name] = (len(s.scored), right)
    assert got == want
    # What the hand computation gives on these tables (ReaL leaves val 1 out; ObjectNet ranks
    # within its mapped classes; ImageNet-C's labels are never voted for).
    assert want == {"imagenet-a": (3, 2), "imagenet": (3, 1), "imagenet-real": (2, 1),
                    "objectnet": (4, 1), "imagenet-c/fog/1": (2, 0), "imagenet-c/fog/2": (2, 0),
                    "imagenet-c/saturate/1": (2, 0)}
    plain = {e["name"]: e["metrics"]["correct"] for e in world["plain"].result.sets}
    assert any(plain[name] != right for name, (_, right) in want.items())   # val and ReaL
    assert run.result.imagenet_c["errors"] == {"fog/1": 1.0, "fog/2": 1.0, "saturate/1": 1.0}


def test_the_result_records_the_mode_and_the_caches_are_apart(world):
    run, plain, home = world["tta"], world["plain"], world["home"]
    assert run.path.name == "vote.tta-zoom-224-mean.suite.json"
    assert plain.path.name == "vote.suite.json"
    raw = json.loads(run.path.read_text())
    assert raw["tta"] == MODE.describe() and raw["tta"]["n_crops"] == 9
    assert json.loads(plain.path.read_text())["tta"] is None
    assert run.result.name == "Colour vote (TTA zoom-224-mean)"
    assert "every set with TTA zoom-224-mean (9 crops, mean" in run.result.summary()
    # The plain suite ran after the TTA one and reused none of its predictions.
    assert (plain.predicted, plain.scored) == (run.predicted, run.scored) == (16, 18)
    caches = sorted(p.name for p in (home / "scores" / "cache").iterdir())
    tta = [c for c in caches if f"-tta-{MODE.key()}" in c]
    assert len(tta) == len(caches) - len(tta) == 6   # ImageNet val and ReaL share one
    assert sorted(c.removesuffix(f"-tta-{MODE.key()}") for c in tta) == [
        c for c in caches if c not in tta]
    again = score_suite(world["sub"], sets=SETS, home=home, options=OPTS, tta=MODE)
    assert again.predicted == 0 and again.result.sets == run.result.sets


def test_verify_re_runs_the_mode_and_catches_a_changed_one(world, tmp_path):
    home, run = world["home"], world["tta"]
    report = verify_suite(run.path, sample=2, home=home, options=OPTS)
    assert report.passed, report.summary()
    raw = json.loads(run.path.read_text())
    # Another mode, recorded consistently: the re-run does not give the recorded probabilities.
    swapped = {**raw, "tta": get_mode("zoom-224-max").describe()}
    (run.path.parent / "swapped.suite.json").write_text(json.dumps(swapped))
    bad = verify_suite(run.path.parent / "swapped.suite.json", sample=3, home=home, options=OPTS)
    assert not bad.passed
    # The rankings alone would pass some sets: the recorded probabilities are what give it away.
    fooled = [n for n, r in bad.sets.items() if r.top1_agreement == r.top5_set_agreement == 1]
    assert fooled and all(bad.sets[n].top1_prob_agreement < bad.sets[n].MIN_PROB for n in fooled)
    # The mode left out, as if the TTA numbers were plain ones.
    bare = {**raw, "tta": None}
    (run.path.parent / "bare.suite.json").write_text(json.dumps(bare))
    assert not verify_suite(run.path.parent / "bare.suite.json", sample=3, home=home,
                            options=OPTS).passed


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["tta"].update(mode="zoom-224-max"), "aggregate differ"),
    (lambda r: r["tta"].update(n_crops=1), "n_crops differ"),
    (lambda r: r["tta"].update(transforms=[0]), "no zoom-224"),
    (lambda r: r["tta"].update(mode="<b>zoom</b>"), "TTA mode"),
    (lambda r: r.update(tta="zoom-224-mean"), "must be an object"),
])
def test_a_tampered_mode_is_refused_on_load_and_by_the_board(world, tmp_path, edit, message):
    raw = json.loads(world["tta"].path.read_text())
    edit(raw)
    bad = world["tta"].path.parent / "tampered.suite.json"
    bad.write_text(json.dumps(raw))
    with pytest.raises(ImHardError, match=message):
        load_suite(bad)
    with pytest.raises(ImHardError, match=message):
        add_suite(bad, tmp_path / "board", home=world["home"])


def test_tampered_numbers_fail_the_board_and_verify(world, tmp_path):
    raw = json.loads(world["tta"].path.read_text())
    raw["sets"][0]["metrics"].update(correct=3, accuracy=1.0)
    bad = world["tta"].path.parent / "inflated.suite.json"
    bad.write_text(json.dumps(raw))
    with pytest.raises(InvalidValueError, match="metrics.accuracy: claimed 1.0"):
        add_suite(bad, tmp_path / "board", home=world["home"])
    report = verify_suite(bad, sample=1, home=world["home"], options=OPTS)
    assert not report.passed and "metrics.accuracy: claimed 1.0" in report.summary()


def test_the_board_names_the_mode_and_keeps_the_rows_apart(world, tmp_path):
    board = tmp_path / "board"
    for run in (world["plain"], world["tta"]):
        add_suite(run.path, board, home=world["home"])
    assert sorted(p.name for p in (board / "results").glob("*.suite.json")) == [
        "colour-vote-tta-zoom-224-mean.suite.json", "colour-vote.suite.json"]
    built = collect_board(board, include_reported=False)
    rows = {r.name: r for r in built.suites}
    assert set(rows) == {"Colour vote", "Colour vote (TTA zoom-224-mean)"}
    assert rows["Colour vote (TTA zoom-224-mean)"].tta_mode == "zoom-224-mean"
    assert (rows["Colour vote"].tta_mode, rows["Colour vote"].uses_tta) == (None, False)
    tagged = {(e.name, e.tta_mode) for e in built.entries}
    assert ("Colour vote (TTA zoom-224-mean)", "zoom-224-mean") in tagged
    assert all(mode is None for name, mode in tagged if "TTA" not in name)
    text = markdown(built.entries, built.suites)
    assert "| Colour vote (TTA zoom-224-mean) | zoom-224-mean |" in text
    assert "| Colour vote | no |" in text


def test_a_tta_suite_is_no_mce_baseline(world):
    with pytest.raises(InvalidValueError, match="scored with TTA zoom-224-mean; mCE"):
        score_suite(world["sub"], sets=["imagenet-c"], home=world["home"], options=OPTS,
                    baseline=world["tta"].path)


def test_cli_suite_with_tta_from_a_cover(world, tmp_path, monkeypatch):
    """--tta-from keeps the cover's zoom transforms on every set, as the paper did with the
    cover of the IN+ReaL run; the cover and its run are recorded and re-run by verify."""
    import imagenet_hard.analysis as analysis

    cover = [zoom.transform_index(224, 1, 1), zoom.transform_index(224, 0, 2),
             zoom.transform_index(512, 1, 1)]
    monkeypatch.setattr(analysis, "cover_of_run",
                        lambda run, home=None: (tuple(cover), {"run": run, "cover_size": 3}))
    home = world["home"]
    out = tmp_path / "cover.suite.json"
    args = ["score", str(world["sub"]), "--suite", "imagenet-a,objectnet", "--tta",
            "zoom-224-mean", "--tta-from", "in-real-run", "--home", str(home), "--out", str(out),
            "--workers", "0", "-q"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "Colour vote (TTA zoom-224-mean): 2 sets, every set with TTA zoom-224-mean (2 crops" \
        in res.output
    tta = json.loads(out.read_text())["tta"]
    assert tta["transforms"] == sorted(cover[:2]) and tta["origin"] == {"run": "in-real-run",
                                                                "cover_size": 3}
    mode = restrict(MODE, cover, {"run": "in-real-run", "cover_size": 3})
    s = resolve_sets(["imagenet-a"], home=home)[0]
    preds = pq.read_table(out.parent / json.loads(out.read_text())["sets"][0]["predictions"]["file"])
    assert preds.column("top5").to_pylist() == _hand_set(s, home, mode)[0]
    ok = CliRunner().invoke(main, ["verify", str(out), "--sample", "2", "--home", str(home),
                                   "--workers", "0", "-q"])
    assert ok.exit_code == 0 and "PASS: 2 sets re-checked" in ok.output, ok.output
