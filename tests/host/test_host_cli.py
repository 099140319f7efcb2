"""The thin commands: submit (without the sandboxed check), host status, host compare."""

from __future__ import annotations

from click.testing import CliRunner

from imagenet_hard.bench.host import generated_results
from imagenet_hard.cli import main


def test_submit_prints_the_id_and_how_to_follow_it_then_status_lists_it(tmp_path):
    sub = tmp_path / "my_model.py"
    sub.write_text("METADATA = {'name': 'x'}\n")
    board = tmp_path / "board"
    res = CliRunner().invoke(main, ["submit", str(sub), "--board", str(board), "--no-check",
                                    "--submitter", "alice"])
    assert res.exit_code == 0, res.output
    assert "filed request" in res.output and f"imhard host status --board {board}" in res.output
    again = CliRunner().invoke(main, ["submit", str(sub), "--board", str(board), "--no-check"])
    assert again.exit_code == 0 and "already requested" in again.output
    status = CliRunner().invoke(main, ["host", "status", "--board", str(board)])
    assert status.exit_code == 0 and "PENDING" in status.output and "alice" in status.output


def test_submit_refuses_a_name_that_is_not_one_plain_py(tmp_path):
    sub = tmp_path / "my model!.py"
    sub.write_text("x = 1\n")
    res = CliRunner().invoke(main, ["submit", str(sub), "--board", str(tmp_path / "b"),
                                    "--no-check"])
    assert res.exit_code == 1 and res.output.startswith("Error:") and "rename it" in res.output


def test_host_compare_writes_the_page_for_any_two_entries(tmp_path):
    board = tmp_path / "board"
    generated_results(board / "results", 3, 500, accuracies=[0.5, 0.45, 0.1])
    res = CliRunner().invoke(main, ["host", "compare", "--board", str(board), "gen-0000",
                                    "gen-0002"])
    assert res.exit_code == 0, res.output
    assert "significant" in res.output and (board / "compare" / "gen-0000--gen-0002.html").is_file()
    res = CliRunner().invoke(main, ["host", "compare", "--board", str(board), "gen-0000", "nope"])
    assert res.exit_code == 1 and "unknown verified entry 'nope'" in res.output
