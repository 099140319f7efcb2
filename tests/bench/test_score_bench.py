"""`imhard bench score` runs both loops over the same data and reports their ratio. Each test
runs one of the command's help examples (the help-example tests leave them to these)."""

import pytest
from click.testing import CliRunner
from help_support import help_example

from imagenet_hard.cli import main


@pytest.mark.slow
def test_bench_score_reports_both_rates_and_the_ratio():
    argv = help_example("bench", "score", index=0)
    assert argv == ["bench", "score", "--images", "32", "--batch-size", "32"]
    res = CliRunner().invoke(main, argv)
    assert res.exit_code == 0, res.output
    out = res.output
    bare = float(out.split("reference  bare DataLoader + model loop")[1].split("images/s")[0])
    harness = float(out.split("imhard score, time producing rows")[1].split("images/s")[0])
    ratio = float(out.split("\nratio")[1].split("x")[0])
    assert bare > 0 and harness > 0
    assert ratio == pytest.approx(harness / bare, rel=0.05)
    assert "(target ≥ 0.9x:" in out and "config:    model EfficientNet-Lite0, images 32" in out


@pytest.mark.slow
def test_bench_score_suite_times_one_dataset_and_the_same_images_split_in_sets():
    argv = help_example("bench", "score", index=1)
    assert argv == ["bench", "score", "--suite", "4", "--images", "32", "--repeat", "1"]
    res = CliRunner().invoke(main, argv)
    assert res.exit_code == 0, res.output
    out = res.output
    one_s = float(out.split("one dataset (imhard score)")[1].split("(")[1].split(" s)")[0])
    suite_s = float(out.split("4 suite sets (imhard score --suite)")[1].split("(")[1].split(" s)")[0])
    ratio = float(out.split("\nratio")[1].split("x")[0])
    assert one_s > 0 and suite_s > 0 and ratio == pytest.approx(one_s / suite_s, abs=2e-3)
    assert "suite overhead" in out and "(target ≥ 0.909x:" in out
