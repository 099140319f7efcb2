"""Bench options on the command line: `imhard bench protocol --vary math` (the variant and the
precision reach the Python API; a judge that has no second fp16 arithmetic is refused in one line
before any model is built) and `imhard bench mine --compile`, `imhard bench score --suite --repeat`."""

from __future__ import annotations

from click.testing import CliRunner

from imagenet_hard.bench import mine as bench_mine_module
from imagenet_hard.bench import protocol as bench_protocol_module
from imagenet_hard.cli import main


def test_vary_math_and_precision_reach_the_api(monkeypatch):
    seen = {}

    class Report:
        pass

    def fake(**kw):
        seen.update(kw)
        return Report()

    monkeypatch.setattr(bench_protocol_module, "bench_protocol", fake)
    monkeypatch.setattr("imagenet_hard.cli.bench._print", lambda report: None)
    res = CliRunner().invoke(main, ["bench", "protocol", "--judge", "open_clip:ViT-B-32/random",
                                    "--precision", "fp16", "--vary", "math", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert seen["vary"] == ("math",) and seen["precision"] == "fp16"


def test_vary_math_of_a_classifier_is_one_error_line():
    res = CliRunner().invoke(main, ["bench", "protocol", "--vary", "math", "--device", "cpu"])
    assert res.exit_code == 1
    errors = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "vary math compares two fp16 arithmetics" in errors[0]


def test_bench_mine_compile_reaches_the_api_and_an_ensemble_refuses_it(monkeypatch):
    seen = {}
    monkeypatch.setattr(bench_mine_module, "bench_mine", lambda **kw: seen.update(kw))
    monkeypatch.setattr("imagenet_hard.cli.bench._print", lambda report: None)
    res = CliRunner().invoke(main, ["bench", "mine", "--compile", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert seen["compile"] is True
    res = CliRunner().invoke(main, ["bench", "mine", "--compile", "--judge",
                                    "efficientnet-lite0,efficientnet-lite0@bf16"])
    assert res.exit_code == 2 and "--compile applies to one judge" in res.output


def test_bench_score_repeat_reaches_the_suite_bench_and_needs_suite(monkeypatch):
    from imagenet_hard.bench import suite as bench_suite_module

    seen = {}
    monkeypatch.setattr(bench_suite_module, "bench_suite", lambda **kw: seen.update(kw))
    monkeypatch.setattr("imagenet_hard.cli.bench._print", lambda report: None)
    res = CliRunner().invoke(main, ["bench", "score", "--suite", "3", "--repeat", "1"])
    assert res.exit_code == 0, res.output
    assert seen["repeat"] == 1 and seen["sets"] == 3
    seen.clear()
    res = CliRunner().invoke(main, ["bench", "score", "--suite"])
    assert res.exit_code == 0 and "repeat" not in seen   # bench_suite's own default applies
    res = CliRunner().invoke(main, ["bench", "score", "--repeat", "2"])
    assert res.exit_code == 2 and "--repeat goes with --suite" in res.output
