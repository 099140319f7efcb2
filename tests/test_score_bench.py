"""`imhard bench score` runs both loops over the same data and reports their ratio."""

import pytest
from click.testing import CliRunner

from imagenet_hard.cli import main


@pytest.mark.slow
def test_bench_score_reports_both_rates_and_the_ratio():
    res = CliRunner().invoke(main, ["bench", "score", "--images", "6", "--batch-size", "3",
                                    "--workers", "0"])
    assert res.exit_code == 0, res.output
    bare = float(res.output.split("bare DataLoader + model loop :")[1].split("images/s")[0])
    harness = float(res.output.split("imhard score (model form)    :")[1].split("images/s")[0])
    ratio = float(res.output.split("ratio ")[1].split()[0])
    assert bare > 0 and harness > 0
    assert ratio == pytest.approx(harness / bare, rel=0.05)


@pytest.mark.slow
def test_bench_score_suite_times_one_dataset_and_the_same_images_split_in_sets():
    res = CliRunner().invoke(main, ["bench", "score", "--suite", "2", "--images", "6",
                                    "--batch-size", "3", "--workers", "0"])
    assert res.exit_code == 0, res.output
    one = float(res.output.split("one dataset (imhard score)          :")[1].split(" s")[0])
    suite = float(res.output.split("2 suite sets (imhard score --suite) :")[1].split(" s")[0])
    ratio = float(res.output.split("ratio ")[1].split()[0])
    assert one > 0 and suite > 0 and ratio == pytest.approx(suite / one, abs=2e-3)
