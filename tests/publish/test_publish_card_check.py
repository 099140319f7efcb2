"""``publish --check`` holds the card to what ``imhard publish`` rendered (issue 19, hole 6).

The counts and the fingerprint the card states were checked before; text added to it (a licence
paragraph, say) passed. An edited card must now fail with one line that names the file and the
command that writes it again.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from imagenet_hard.cli import main
from imagenet_hard.publish import check, publish


@pytest.fixture
def published(sample_run):
    return publish(sample_run.run, None, sample_run.home / "dist" / "imagenet-hard",
                   include_pending=True, home=sample_run.home)


def _problem(report) -> str:
    (line,) = [p for p in report.problems if "README.md" in p]
    return line


def test_an_untouched_card_passes(published):
    res = CliRunner().invoke(main, ["publish", "--check", str(published.out)])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("edit", [
    lambda text: text + "\n## Licence\n\nCC-BY 4.0 for everything (it is not).\n",
    lambda text: text.replace("## ", "## Edited: ", 1),
    lambda text: text.replace("\n", "\r\n"),
])
def test_an_edited_card_fails_naming_the_file_and_the_fix(published, edit):
    readme = published.out / "README.md"
    readme.write_bytes(edit(readme.read_text(encoding="utf-8")).encode("utf-8"))
    report = check(published.out)
    assert not report.ok
    line = _problem(report)
    assert "\n" not in line
    assert "imhard publish --run sample-run" in line and str(published.out) in line
    res = CliRunner().invoke(main, ["publish", "--check", str(published.out)])
    assert res.exit_code == 1 and "README.md" in res.output and "Traceback" not in res.output


def test_a_card_without_its_record_fails(published):
    readme = published.out / "README.md"
    lines = readme.read_text(encoding="utf-8").splitlines(keepends=True)
    readme.write_text("".join(lines[:-1]), encoding="utf-8")
    assert "imhard publish --run" in _problem(check(published.out))


def test_check_leaves_torch_unimported(published):
    """datasets' streamed reader would import torch (~0.9 GB) for an epoch counter."""
    import subprocess
    import sys

    code = ("import sys; from imagenet_hard.publish import check; "
            f"r = check({str(published.out)!r}); print(r.ok, r.rows, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[::2] == ["True", "False"], out.stdout
