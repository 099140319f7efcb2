"""Start-up: the stages that need no model leave torch unimported, so does every `--help`, and
argument errors are caught while parsing, before heavy imports and before anything is written.

Each check runs in a fresh interpreter (this test process has long imported torch). Durations are
never asserted (the machine is shared); what is imported is.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import click
import pytest

from imagenet_hard.cli import main

LIGHT_MODULES = ["imagenet_hard", "imagenet_hard.sources", "imagenet_hard.mining",
                 "imagenet_hard.review", "imagenet_hard.publish", "imagenet_hard.leaderboard",
                 "imagenet_hard.score", "imagenet_hard.imaging", "imagenet_hard.bench",
                 "imagenet_hard.cli"]


def _fresh(code: str, home) -> dict:
    """Run ``code`` in a new interpreter; it prints a JSON object as its last line."""
    env_code = f"import os\nos.environ['IMHARD_HOME'] = {str(home)!r}\n" + textwrap.dedent(code)
    proc = subprocess.run([sys.executable, "-c", env_code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        yield [*prefix, name]
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


def test_stages_without_models_import_no_torch(tmp_path):
    got = _fresh(f"""
        import importlib, json, sys
        for name in {LIGHT_MODULES!r}:
            importlib.import_module(name)
        print(json.dumps({{"torch": "torch" in sys.modules}}))
    """, tmp_path)
    assert got == {"torch": False}


def test_every_help_leaves_torch_unimported(tmp_path):
    paths = [[]] + list(_commands(main))
    got = _fresh(f"""
        import contextlib, io, json, sys
        from imagenet_hard.cli import main
        codes = {{}}
        for path in {paths!r}:
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    main([*path, "--help"])
                except SystemExit as exc:
                    codes[" ".join(path)] = exc.code
        print(json.dumps({{"codes": codes, "torch": "torch" in sys.modules}}))
    """, tmp_path)
    assert set(got["codes"].values()) == {0} and len(got["codes"]) == len(paths) > 20
    assert not got["torch"], "some `imhard … --help` imports torch"


ARGUMENT_ERRORS = [
    (["build", "--sha256", "abc123", "--source", "sample"], "64 hex digits"),
    (["build", "--source", "sample", "--sha256", "g" * 64], "64 hex digits"),
    (["build", "--source", "sampel"], "Did you mean: sample"),
    (["build", "--source", "sample", "--path", "/no/such/archive.tar"], "does not exist"),
    (["mine", "--source", "sample", "--batch-size", "0"], "--batch-size"),
    (["mine", "--source", "sample", "--crops", "gpu"], "--crops"),
    (["mine", "--source", "sample", "--shard-size", "-1"], "--shard-size"),
    (["mine", "--source", "sample", "--protocol", "papr"], "--protocol"),
    (["mine", "--source", "sample", "--precision", "fp8"], "--precision"),
    (["mine", "--source", "sample", "--objectnet-labels", "all"], "--objectnet-labels"),
    (["mine", "--source", "sample", "--judge", "efficientnet-lite0", "--normalization", "clip"],
     "applies to zero-shot (CLIP) judges"),
    (["mine", "--source", "sample", "--weights", "/no/such/weights.bin"], "does not exist"),
    (["bench", "mine", "--images", "0"], "--images"),
    (["bench", "mine", "--normalization", "imagenet"], "applies to zero-shot (CLIP) judges"),
    (["publish", "--max-shard-size", "lots"], "expected a size such as 500MB"),
    (["mine", "--source", "sample", "--judge", "efficientnet-lit0"],
     "Did you mean: efficientnet-lite0"),
    (["mine", "--source", "sample", "--run", "../escape"], "must be a plain folder name"),
    (["mine", "--source", "sample", "--run-name", "a/b"], "must be a plain folder name"),
    (["score", "my_model.py", "--tta", "zoom-in-mx"], "Did you mean: zoom-in-max"),
    (["bench", "mine", "--judge", "efficientnet-lit0"], "Did you mean: efficientnet-lite0"),
]
#: Errors the library finds (exit 1), still before torch and before anything is written.
LIBRARY_ERRORS = [
    (["mine", "--source", "sampel"], "source 'sampel' is not built"),
    (["mine", "--source", "sample", "--run", "mine-1"], "source 'sample' is not built"),
    (["mine", "--source", "imagenet-a"], "run `imhard build --source imagenet-a` first"),
    (["mine", "--source", "imagenet-c/fog/3"], "source 'imagenet-c/fog/3' is not built ("),
    (["mine", "--source", "imagenet-c/gaussian_noise/5"],
     "run `imhard build --source imagenet-c --corruptions gaussian_noise --severities 5` first"),
    (["mine", "--source", "sample", "--order-from", "nosuch"], "no mining run 'nosuch'"),
    (["review", "import", "--run", "nosuch"], "no mining run 'nosuch'"),
    (["publish", "--run", "nosuch"], "no mining run 'nosuch'"),
    (["analyze", "nosuch"], "no mining run 'nosuch'"),
    (["build", "--source", "imagenet-c", "--from", "sampel"], "made from one of"),
    (["build", "--source", "imagenet-c", "--corruptions", "fogg"], "Did you mean: fog"),
    (["build", "--source", "imagenet-c", "--severities", "7"], "severity must be"),
    (["score", "nosuch.py"], "does not exist"),
    (["verify", "nosuch.json"], "does not exist"),
]
ERRORS = [(a, m, 2) for a, m in ARGUMENT_ERRORS] + [(a, m, 1) for a, m in LIBRARY_ERRORS]


@pytest.mark.parametrize("args,message,code", ERRORS, ids=[" ".join(a) for a, _, _ in ERRORS])
def test_argument_errors_come_before_heavy_imports_and_writes(args, message, code, tmp_path):
    home = tmp_path / "home"
    got = _fresh(f"""
        import contextlib, io, json, sys
        from imagenet_hard.cli import main
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                main({[*args, "--home", str(home)]!r})
            except SystemExit as exc:
                code = exc.code
        print(json.dumps({{"code": code, "err": err.getvalue(), "torch": "torch" in sys.modules}}))
    """, home)
    assert got["code"] == code, got
    assert message in got["err"]
    assert not got["torch"]
    assert not home.exists(), "an argument error wrote into the data home"


def test_build_checks_the_hash_format_before_writing(tmp_path):
    from imagenet_hard.errors import InvalidValueError
    from imagenet_hard.sources import build

    with pytest.raises(InvalidValueError, match="--sha256 must be 64 hex digits"):
        build("imagenet-a", home=tmp_path, sha256="0" * 63)
    assert list(tmp_path.iterdir()) == []
