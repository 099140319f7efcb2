"""`imhard demo` (what `make demo` runs) goes through every stage offline."""

import pytest
from click.testing import CliRunner
from help_support import help_example

from imagenet_hard.cli import main


@pytest.mark.slow
def test_demo_runs_every_stage_offline(isolated_home):
    """`imhard demo --help`'s example, in the test's home (test_help_examples leaves it to us)."""
    argv = help_example("demo")
    assert argv[:2] == ["demo", "--home"]
    res = CliRunner().invoke(main, [*argv[:2], str(isolated_home), *argv[3:]])
    assert res.exit_code == 0, res.output
    for heading in ("1. build", "2. mine", "3. review", "4. publish", "5. score",
                    "6. score --suite", "7. analyze", "8. host"):
        assert f"== {heading}" in res.output
    assert "sample: 9 images, 0 rejected" in res.output
    for name in ("impulse_noise", "frost", "fog"):   # the short tour's three of the paper's six
        assert f"imagenet-c/{name}/3" in res.output  # built, then mined with the sample
        assert f"  imagenet_c/{name}/3 " in res.output
    # ImageNet-C's point, shown on the cat and the rocket (both right at the first crop): frost
    # makes the rocket a candidate; the cat stays right under every corruption
    assert "candidate imagenet_c/frost/3/sample/n03773504/rocket.jpg" in res.output
    assert "chelsea.png" not in "".join(line for line in res.output.splitlines()
                                        if line.startswith("  candidate "))
    for name in ("snow", "brightness", "zoom_blur"):  # `imhard demo --full` only
        assert f"imagenet-c/{name}/3" not in res.output
    assert "datasets.load_dataset → " in res.output
    assert "| EfficientNet-Lite0 | verified |" in res.output
    assert (isolated_home / "dist" / "imagenet-hard" / "README.md").is_file()
    assert (isolated_home / "leaderboard" / "index.html").is_file()
    assert "  sample                     in1k" in res.output
    assert "  imagenet-hard              imagenet-hard" in res.output
    assert (isolated_home / "scores" / "efficientnet_lite0.suite.json").is_file()
    report = isolated_home / "analysis" / "demo-efficientnet-lite0-exhaustive" / "report.md"
    assert f"report: {report}" in res.output and "## Greedy minimum set cover" in report.read_text()
    # The hosted board: the request filed, the worker finished it, the board shows it verified.
    assert "filed request" in res.output and "FINISHED" in res.output
    hosted = isolated_home / "board" / "index.html"
    assert "verified rows: 1," in res.output and 'id="queue"' in hosted.read_text()
    # The closing summary: a time per stage, what to open next, and no reported row printed.
    done = res.output[res.output.index("== done =="):]
    for stage in ("build", "mine", "review", "publish", "score", "suite", "analyze", "host",
                  "total"):
        assert f"  {stage} " in done
    assert f"open the board page: {isolated_home / 'leaderboard' / 'index.html'}" in done
    assert f"open the analysis report: {report}" in done
    assert f"open the hosted board: {hosted}" in done
    assert "imhard score my_model.py" in done
    assert "| reported |" not in res.output and "reported rows on the page" in res.output
    assert (isolated_home / ".imhard-demo").is_file()


def test_demo_empties_only_its_own_home(tmp_path):
    """A second run starts from an empty home (the same result every time); a folder holding
    anything else, such as a real data home, is refused before anything is touched."""
    from imagenet_hard.demo import MARKER, _fresh

    home = tmp_path / "demo"
    _fresh(home)
    (home / "review.duckdb").write_bytes(b"decisions of the first run")
    _fresh(home)
    assert sorted(p.name for p in home.iterdir()) == [MARKER]

    real = tmp_path / "real"
    (real / "sources").mkdir(parents=True)
    (real / "review.duckdb").write_bytes(b"a user's decisions")
    res = CliRunner().invoke(main, ["demo", "--home", str(real)])
    assert res.exit_code == 1 and "not a demo home" in res.output and "\n" not in res.output.strip()
    assert (real / "review.duckdb").read_bytes() == b"a user's decisions"
