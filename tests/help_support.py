"""The `Example:` commands of every `imhard --help`, for the help-example tests and for tests
that run an example themselves (test_help_examples.RunBy)."""

from __future__ import annotations

import shlex

import click

from imagenet_hard.cli import main


def _commands(group: click.Group, prefix=()):
    yield prefix, group
    for name, cmd in getattr(group, "commands", {}).items():
        yield from _commands(cmd, (*prefix, name))


def examples(help_text: str) -> list[list[str]]:
    """The commands of a help's `Example:` block, as a shell splits them: one a line, `&&`
    splitting a line, `#` comments dropped."""
    lines = help_text.split("Example:", 1)[1].strip("\n").splitlines() if help_text else []
    out = []
    for line in lines:
        if not line.strip():
            break
        out.extend(shlex.split(part, comments=True) for part in line.split("&&"))
    return out


def help_example(*path: str, index: int | None = None) -> list[str]:
    """The words after `imhard` of the one example of command ``path``, or of its example
    ``index`` when it has several (for tests that run an example themselves: test_help_examples.RunBy)."""
    found = ALL_EXAMPLES[" ".join(path)]
    (words,) = found if index is None else [found[index]]
    return words[1:]


ALL_EXAMPLES = {" ".join(path) or "imhard": examples(cmd.help or "")
                for path, cmd in _commands(main)}
#: Each example's words by its plan key (the words joined by spaces, torchrun dropped).
WORDS = {" ".join(words): words for ex in ALL_EXAMPLES.values() for words in ex}
