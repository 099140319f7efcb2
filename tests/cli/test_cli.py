"""The CLI as a whole: help with an example on every command, version, `python -m`."""

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from imagenet_hard import __version__
from imagenet_hard.cli import main


def _commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


ALL = sorted(_commands(main), key=lambda c: c[0])


@pytest.mark.parametrize("path", [p for p, _ in ALL], ids=[" ".join(p) for p, _ in ALL])
def test_every_command_has_help_with_an_example(path):
    res = CliRunner().invoke(main, [*path, "--help"])
    assert res.exit_code == 0, res.output
    assert "Example:" in res.output, f"`imhard {' '.join(path)} --help` has no Example:"


def test_version_and_module_entry_point():
    res = CliRunner().invoke(main, ["--version"])
    assert __version__ in res.output
    out = subprocess.run([sys.executable, "-m", "imagenet_hard", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "Usage:" in out and "build" in out


def test_a_library_error_is_one_error_line_and_exit_code_1(tmp_path):
    # ImageNet has no public address: the library raises MissingFileError, the CLI reports it
    res = CliRunner().invoke(main, ["build", "--source", "imagenet", "--home", str(tmp_path)])
    assert res.exit_code == 1
    assert isinstance(res.exception, SystemExit)          # handled, not an escaped exception
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ImageNet has no public download address")
    assert "--path" in lines[0]
