"""`imhard demo` (what `make demo` runs) goes through every stage offline."""

import pytest
from click.testing import CliRunner
from test_help_examples import help_example

from imagenet_hard.cli import main


@pytest.mark.slow
def test_demo_runs_every_stage_offline(isolated_home):
    """`imhard demo --help`'s example, in the test's home (test_help_examples leaves it to us)."""
    argv = help_example("demo")
    assert argv[:2] == ["demo", "--home"]
    res = CliRunner().invoke(main, [*argv[:2], str(isolated_home), *argv[3:]])
    assert res.exit_code == 0, res.output
    for heading in ("1. build", "2. mine", "3. review", "4. publish", "5. score",
                    "6. score --suite", "7. analyze"):
        assert f"== {heading}" in res.output
    assert "sample: 9 images, 0 rejected" in res.output
    for name in ("impulse_noise", "frost", "fog", "snow", "brightness", "zoom_blur"):
        assert f"imagenet-c/{name}/3" in res.output  # built, then mined with the sample
        assert f"  imagenet_c/{name}/3 " in res.output
    assert "datasets.load_dataset → " in res.output
    assert "| EfficientNet-Lite0 | verified |" in res.output
    assert (isolated_home / "dist" / "imagenet-hard" / "README.md").is_file()
    assert (isolated_home / "leaderboard" / "index.html").is_file()
    assert "  sample                     in1k" in res.output
    assert "  imagenet-hard              imagenet-hard" in res.output
    assert (isolated_home / "scores" / "efficientnet_lite0.suite.json").is_file()
    report = isolated_home / "analysis" / "demo-efficientnet-lite0-exhaustive" / "report.md"
    assert f"report: {report}" in res.output and "## Greedy minimum set cover" in report.read_text()
