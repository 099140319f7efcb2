"""``imhard bench mine --judge a,b,c``: the printed costs against a hand computation, with three
scripted judges whose verdicts (and so early exit's forward passes) were injected per image."""

from __future__ import annotations

import pytest
import torch

from imagenet_hard.bench.ensemble import bench_ensemble
from imagenet_hard.mining import ensemble as ens
from imagenet_hard.mining import order
from tests.mining_support import SynthImage, make_source

ROUNDS = order.heuristic_order().rounds(False)   # early exit's rounds: 1, 8, 27, 72, 216 crops
#: The round in which each judge first gets each image right (None: never): the judge then
#: pays 1, 9, 36, 108 or 324 forward passes on it (324 when never right).
SETTLES = {
    "test-ens-a": {"a.png": 0, "b.png": None, "c.png": None, "d.png": 3},
    "test-ens-b": {"a.png": 1, "b.png": 0, "c.png": None, "d.png": None},
    "test-ens-c": {"a.png": 2, "b.png": None, "c.png": None, "d.png": 1},
}
#: Measured time per crop, injected: the ensemble runs them c, b, a (cheapest first).
PER_CROP = {"test-ens-a": 0.003, "test-ens-b": 0.002, "test-ens-c": 0.001}


#: A crop's fingerprint: a weighted sum of every 8th pixel with fixed random integer weights
#: (exact, one vectorised pass over a batch whatever its memory layout; noise crops differ).
WEIGHTS = torch.randint(0, 1000, (3, 28, 28), generator=torch.Generator().manual_seed(0))


def fingerprints(crops: torch.Tensor) -> list[int]:
    return (crops[:, :, ::8, ::8].long() * WEIGHTS).sum(dim=(1, 2, 3)).tolist()


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """Four noise photos as the source ``synth``; each judge's planted right crop per image (the
    first crop of the round it settles in) by fingerprint, with the image's class."""
    from imagenet_hard import zoom
    from imagenet_hard.pixels import open_image, to_rgb

    home = tmp_path_factory.mktemp("home")
    images = [SynthImage(m, (40 + 4 * k, 36), (k + 1,), k) for k, m in
              enumerate(("a.png", "b.png", "c.png", "d.png"))]
    rows = {r.id.rsplit("/", 1)[-1]: r for r in make_source(home, "synth", images)}
    right = {}
    for name, settles in SETTLES.items():
        right[name] = {}
        for member, s in settles.items():
            if s is not None:
                crop = zoom.zoom_crops(to_rgb(open_image(home / rows[member].path)),
                                       [ROUNDS[s][0]])
                right[name][fingerprints(crop)[0]] = rows[member].label[0]
    return home, right


@pytest.fixture
def judges(synth, monkeypatch, request):
    """The three judges, registered for this test: right on their planted crops only."""
    from imagenet_hard.judges import JUDGES, ScriptedJudge, register_judge

    home, right = synth
    for name in SETTLES:
        def answer(crops, right=right[name]):
            return torch.tensor([right.get(f, 0) for f in fingerprints(crops)])

        register_judge(name)(lambda device=None, name=name, answer=answer, **kw:
                             ScriptedJudge(answer, name=name))
        request.addfinalizer(lambda name=name: JUDGES._items.pop(name, None))
    monkeypatch.setattr(ens, "seconds_per_crop", lambda judge, dev: PER_CROP[judge.name])
    return home


# By hand, from SETTLES (per image a, b, c, d; 324 where a judge is never right):
#   a: 1 + 324 + 324 + 108 = 757    b: 9 + 1 + 324 + 324 = 658    c: 36 + 324 + 324 + 9 = 693
SINGLES = {"a": 757, "b": 658, "c": 693}   # sum 2,108
#   all: the first judge judges all 4 images, each later one those every earlier one failed
#   (a fails b, c; b fails c, d; c fails b, c).
ALL = {"abc": 757 + (1 + 324) + 324, "acb": 757 + (324 + 324) + (1 + 324),
       "bac": 658 + (324 + 108) + 324, "bca": 658 + (324 + 9) + 324,
       "cab": 693 + (324 + 324) + (1 + 324), "cba": 693 + (1 + 324) + 324}
#   majority of 3: the first two judges on every image, the third where they disagree
#   (image a never; b when b is among the first two with a or c; d when b is).
MAJORITY = {"abc": 10 + 649 + 648 + 441, "acb": 37 + 648 + 648 + 117,
            "bac": 10 + 649 + 648 + 441, "bca": 45 + 649 + 648 + 441,
            "cab": 37 + 648 + 648 + 117, "cba": 45 + 649 + 648 + 441}


@pytest.mark.parametrize(("rule", "by_hand", "candidates", "best", "worst"), [
    ("all", ALL, 1, "bca", "acb"), ("majority", MAJORITY, 2, "acb", "bca")])
def test_printed_costs_match_a_hand_computation(judges, rule, by_hand, candidates, best, worst):
    report = bench_ensemble(",".join(SETTLES), rule, images=4, source="synth", home=judges,
                            device="cpu", workers=0, echo=lambda m: None)
    name = {k[-1]: f"{k}@{report.chosen[0].split('@')[1]}" for k in SETTLES}
    assert report.chosen == (name["c"], name["b"], name["a"])
    assert {k: report.singles[name[k]].forward_passes for k in "abc"} == SINGLES
    assert report.sum_of_singles.forward_passes == 2108
    orders = {"".join(j.split("@")[0][-1] for j in o): c for o, c in report.orders.items()}
    assert {o: c.forward_passes for o, c in orders.items()} == by_hand
    assert report.ensemble.forward_passes == by_hand["cba"]       # the run itself, counted
    assert report.replay_matches
    assert report.ensemble.candidates == candidates
    assert "".join(j.split("@")[0][-1] for j in report.best) == best
    assert "".join(j.split("@")[0][-1] for j in report.worst) == worst
    # seconds of a replayed order: each judge's passes × its injected time per crop
    assert orders["abc"].seconds == pytest.approx(
        {"all": 757 * .003 + 325 * .002 + 324 * .001,
         "majority": (1 + 324 + 324 + 108) * .003 + (9 + 1 + 324 + 324) * .002
         + (324 + 9) * .001}[rule])
    text = report.summary()
    print(text)
    lines = text.splitlines()

    def figures(label):
        line = next(ln for ln in lines if ln.startswith(label))
        return line[len(label):].split()

    assert figures(f"alone  {name['a']}")[0] == "757"
    assert figures("sum of singles")[0] == "2,108"
    assert figures(f"ensemble ({name['c']} → {name['b']} → {name['a']})")[0] == \
        f"{by_hand['cba']:,}"
    assert f"ensemble ≤ sum of singles: yes in forward passes ({by_hand['cba']:,} ≤ 2,108" in text
    worst_passes, chosen_passes = by_hand[worst], by_hand["cba"]
    assert (f"the chosen order beats the worst by {worst_passes / chosen_passes:.2f}x in forward "
            f"passes (worst {worst_passes:,} ÷ chosen {chosen_passes:,}), the best order by "
            f"{worst_passes / by_hand[best]:.2f}x; the chosen order is not the best") in text
    assert f"worst order ≤ sum of singles: yes ({worst_passes:,} ≤ 2,108)" in text
    slowest = max(c.seconds for c in orders.values())
    assert (f"the chosen order beats the slowest by {slowest / orders['cba'].seconds:.2f}x "
            f"({slowest:.2f} ÷ {orders['cba'].seconds:.2f} s)") in text
    for o, passes in by_hand.items():
        label = "  " + " → ".join(name[k] for k in o)
        assert figures(label)[0] == f"{passes:,}"
    assert "replay of the chosen order = the ensemble run's forward passes: yes" in text


def test_an_ensemble_of_one_or_too_many_judges_is_refused():
    from imagenet_hard.errors import InvalidValueError

    with pytest.raises(InvalidValueError, match="at least two"):
        bench_ensemble("efficientnet-lite0", device="cpu")
    with pytest.raises(InvalidValueError, match="at most 6"):
        bench_ensemble(",".join(f"efficientnet-lite0@{p}" for p in ("fp32", "bf16", "fp16"))
                       + ",timm:a,timm:b,timm:c,timm:d", device="cpu")


def test_the_command_refuses_one_judge_knobs_for_an_ensemble_and_a_rule_for_one_judge():
    from click.testing import CliRunner

    from imagenet_hard.cli import main

    res = CliRunner().invoke(main, ["bench", "mine", "--judge", "efficientnet-lite0,"
                                    "efficientnet-lite0@bf16", "--precision", "bf16"])
    assert res.exit_code == 2 and "--precision apply to one judge" in res.output
    res = CliRunner().invoke(main, ["bench", "mine", "--rule", "any"])
    assert res.exit_code == 2 and "--rule combines several judges" in res.output
    res = CliRunner().invoke(main, ["bench", "mine", "--judge", "efficientnet-lite0,"
                                    "efficientnet-lite0"])
    assert res.exit_code == 2 and "listed twice" in res.output
