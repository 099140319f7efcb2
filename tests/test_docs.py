"""The README and docs/ tell the truth about the code: every ``imhard …`` line in them names a
real command with real options, every relative link and anchor resolves, and the README's own
submission example follows the contract."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from imagenet_hard.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _blocks(path: Path) -> list[tuple[str, str]]:
    """(language, body) of every fenced code block."""
    return re.findall(r"^```(\w*)\n(.*?)^```", path.read_text(encoding="utf-8"), flags=re.M | re.S)


def _command_lines(path: Path) -> list[str]:
    out = []
    for lang, body in _blocks(path):
        if lang not in ("", "bash", "sh", "console"):
            continue
        for line in body.splitlines():
            line = line.strip().removeprefix("$ ")
            for part in re.split(r"&&|\|\|?|;", line.split("  #")[0]):
                if part.strip().startswith("imhard "):
                    out.append(part.strip())
    prose = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
    for span in re.findall(r"`(imhard [^`]+)`", prose):
        out += [p.strip() for p in re.split(r"&&|;", span) if p.strip().startswith("imhard ")]
    return out


def _check(line: str) -> None:
    # Prose writes optional parts as [--opt VALUE] and choices as a|b: check each option named.
    text = re.sub(r"[\[\]…]", " ", line).replace("|", " ")
    words = shlex.split(text, posix=True)[1:]
    cmd, ctx, path = main, click.Context(main, info_name="imhard"), ["imhard"]
    while isinstance(cmd, click.Group) and words and not words[0].startswith("-"):
        sub = cmd.get_command(ctx, words[0])
        assert sub is not None, f"{line!r}: no command {' '.join([*path, words[0]])}"
        path.append(words.pop(0))
        cmd, ctx = sub, click.Context(sub, info_name=path[-1], parent=ctx)
    known = {o for p in cmd.params for o in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])}
    known |= {"--help", "-h"}
    for w in words:
        if w.startswith("-") and not re.fullmatch(r"-\d.*", w):
            assert w.split("=", 1)[0] in known, f"{line!r}: {' '.join(path)} has no option {w}"


LINES = [(p.relative_to(ROOT).as_posix(), line) for p in DOCS for line in _command_lines(p)]


@pytest.mark.parametrize(("doc", "line"), LINES, ids=[f"{d}:{k}" for k, (d, _) in enumerate(LINES)])
def test_every_command_line_in_the_docs_exists(doc, line):
    _check(line)


def test_the_check_catches_a_missing_option():
    with pytest.raises(AssertionError, match="no option --weights"):
        _check("imhard score my_model.py --weights PATH")
    with pytest.raises(AssertionError, match="no command"):
        _check("imhard scroe my_model.py")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
    heads = re.findall(r"^#{1,6} (.+)$", text, flags=re.M)
    return {re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_every_relative_link_and_anchor_resolves():
    problems = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://|mailto:", target):
                continue
            file, _, anchor = target.partition("#")
            dest = (doc.parent / file) if file else doc
            if not dest.exists():
                problems.append(f"{doc.name}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                problems.append(f"{doc.name}: {target} (no such heading)")
    assert not problems, problems


def test_readme_submission_example_follows_the_contract(tmp_path):
    from imagenet_hard.score import contract

    (body,) = [b for lang, b in _blocks(ROOT / "README.md") if lang == "python"
               and b.startswith("# my_model.py")]
    path = tmp_path / "my_model.py"
    path.write_text(body)
    sub = contract.inspect(contract.import_file(path))
    assert sub.form == "predict" and sub.metadata["name"] == "ResNet-18 + flip"


@pytest.mark.slow
def test_the_python_api_example_runs(isolated_home, monkeypatch, capsys):
    """docs/python-api.md's example, as written, in a fresh data home (the test's)."""
    (body,) = [b for lang, b in _blocks(ROOT / "docs" / "python-api.md") if lang == "python"]
    monkeypatch.chdir(ROOT)        # it names leaderboard/submissions/… relative to the checkout
    scope: dict = {}
    exec(compile(body, "docs/python-api.md", "exec"), scope)
    assert scope["result"].result.metrics["n"] == scope["out"].rows
    assert [s["name"] for s in scope["suite"].result.sets] == ["sample", "imagenet-hard"]
    assert scope["zoomed"].result.tta["mode"] == "zoom-224-mean"
    assert (isolated_home / "dist" / "imagenet-hard").is_dir()
