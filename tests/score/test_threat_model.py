"""The threat model in docs/scoring.md is the code's: the roles it lists are exactly the
sandbox's, and every mount of a real plan has one of them."""

from __future__ import annotations

import re
from pathlib import Path

from imagenet_hard import sandbox as sb

DOC = Path(__file__).resolve().parents[2] / "docs" / "scoring.md"


def _table(start: str, end: str) -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    block = text[text.index(start) + len(start):text.index(end)]
    rows = re.findall(r"^\| `([^`]+)` \| (.+?) \|$", block, flags=re.M)
    return dict(rows)


def test_documented_roles_are_the_sandboxes():
    assert _table("<!-- roles:start -->", "<!-- roles:end -->") == sb.ROLES


def test_every_mount_of_a_plan_has_a_documented_role(tmp_path):
    sub = tmp_path / "sub.py"
    sub.write_text("")
    out = tmp_path / "out"
    out.mkdir()
    plan = sb.make_plan([str(sub)], [str(out)], {})
    try:
        roles = {m.role for m in plan.mounts}
        assert roles <= set(sb.ROLES), roles - set(sb.ROLES)
        assert {"system", "python", "worker", "job", "scratch", "output"} <= roles
        assert {m.src for m in plan.mounts if m.role == "job"} == {str(sub)}
        assert all(m.kind == "ro" for m in plan.mounts
                   if m.role in ("python", "worker", "job", "weights", "hidden"))
        assert {m.role for m in plan.mounts if m.kind == "rw"} == {"scratch", "output"}
    finally:
        plan.cleanup()


def test_documented_bounds_are_the_harnesses():
    from imagenet_hard.score import harness, runner

    modules = {"runner": runner, "harness": harness}
    rows = _table("<!-- bounds:start -->", "<!-- bounds:end -->")
    # Every bound the two modules define (a read of the child's output gets one) is documented.
    defined = {f"{m}.{name}" for m, mod in modules.items() for name in vars(mod)
               if re.fullmatch(r"[A-Z_]+_(BYTES|LINES|CHARS|ROWS)", name)}
    assert set(rows) == defined
    for name, text in rows.items():
        module, attr = name.split(".")
        value = getattr(modules[module], attr)
        assert text.startswith(f"{value} "), (name, value, text)
