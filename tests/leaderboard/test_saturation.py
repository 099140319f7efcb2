"""Saturation watch: per dataset, the best verified accuracy, its record progression by date,
and the 'no longer hard' flag at the board's threshold (a setting in <board>/settings.json)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from scoring_data import PREDICT_FORM, make_dataset, write_submission

from imagenet_hard.cli import main
from imagenet_hard.errors import InvalidValueError
from imagenet_hard.leaderboard import saturation
from imagenet_hard.leaderboard.entries import Entry


def entry(name, acc, section="fp-a", source=None, status="verified"):
    return Entry(name=name, status=status, dataset=f"imagenet-hard v1.0.0 ({section})",
                 accuracy=acc, source=source or f"{name}.json", section=section)


def board(tmp_path, dates: dict[str, str]):
    (tmp_path / "results").mkdir()
    for name, date in dates.items():
        (tmp_path / "results" / f"{name}.json").write_text(json.dumps({"date": date}))
    return tmp_path


def test_records_trend_and_flag(tmp_path):
    b = board(tmp_path, {"a": "2026-01-05T10:00:00+00:00", "b": "2026-03-01T00:00:00+00:00",
                         "c": "2026-02-01T00:00:00+00:00", "d": "2026-04-01T00:00:00+00:00",
                         "e": "2026-01-01T00:00:00+00:00"})
    entries = [entry("a", 0.20), entry("b", 0.55), entry("c", 0.15), entry("d", 0.40),
               entry("e", 0.30, section="fp-b"), entry("Reported", 0.9, status="reported")]
    (w_a, w_b) = saturation.watch(entries, b)
    assert (w_a.section, w_a.results, w_a.best.name) == ("fp-a", 4, "b")
    assert [(r.date, r.name, r.accuracy) for r in w_a.records] == [
        ("2026-01-05", "a", 0.20), ("2026-03-01", "b", 0.55)]   # c and d beat no record
    assert w_a.saturated and not w_b.saturated                  # default threshold 0.5
    md = saturation.markdown([w_a, w_b])
    assert "| 20.00 (2026-01-05) → 55.00 (2026-03-01) | **no longer hard** |" in md
    assert "| 30.00 (2026-01-01) | hard |" in md
    (w,) = saturation.watch(entries[:4], b, threshold=0.6)
    assert not w.saturated


def test_settings_are_validated_and_links_refused(tmp_path):
    assert saturation.read_settings(tmp_path) == {"saturation_threshold": 0.5}
    saturation.write_settings(tmp_path, saturation_threshold=0.25)
    assert saturation.read_settings(tmp_path)["saturation_threshold"] == 0.25
    for bad in ({"saturation_threshold": 2}, {"saturation_threshold": "0.5"}, {"other": 1}, []):
        (tmp_path / "settings.json").write_text(json.dumps(bad))
        with pytest.raises(InvalidValueError):
            saturation.read_settings(tmp_path)
    (tmp_path / "settings.json").write_text(" " * (saturation.MAX_SETTINGS_BYTES + 1))
    with pytest.raises(InvalidValueError, match="over"):
        saturation.read_settings(tmp_path)
    (tmp_path / "settings.json").unlink()
    (tmp_path / "elsewhere.json").write_text(json.dumps({"saturation_threshold": 0.1}))
    (tmp_path / "settings.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(InvalidValueError, match="regular file"):
        saturation.read_settings(tmp_path)


def test_names_are_escaped(tmp_path):
    b = board(tmp_path, {"x": "2026-01-01"})
    (w,) = saturation.watch([entry("<script>x|y", 0.1, source="x.json")], b)
    assert "<script>" not in saturation.html_section([w])
    assert "\\|y" in saturation.markdown([w]) and "<script>" not in saturation.markdown([w])


def test_build_shows_the_watch_and_saves_the_threshold(tmp_path, isolated_home):
    from imagenet_hard.score import RunOptions, score
    from imagenet_hard.score.sets import default_dataset

    make_dataset(default_dataset())
    sub = write_submission(tmp_path, PREDICT_FORM, "oracle.py")
    run = score(sub, out=tmp_path / "out" / "oracle.json", options=RunOptions(batch_size=4))
    b = tmp_path / "board"
    assert CliRunner().invoke(main, ["leaderboard", "add", str(run.path), "--dir",
                                     str(b)]).exit_code == 0
    res = CliRunner().invoke(main, ["leaderboard", "build", "--dir", str(b)])
    assert res.exit_code == 0, res.output
    assert "best verified 50.00% (Controlled), 1 record(s); NO LONGER HARD at 50%" in res.output
    assert "**no longer hard**" in (b / "README.md").read_text()
    page = (b / "index.html").read_text()
    assert page.index('id="saturation"') < page.index("<footer>")
    res = CliRunner().invoke(main, ["leaderboard", "build", "--dir", str(b),
                                    "--saturation-threshold", "0.6"])
    assert res.exit_code == 0 and "; hard at 60%" in res.output
    assert json.loads((b / "settings.json").read_text()) == {"saturation_threshold": 0.6}
    res = CliRunner().invoke(main, ["leaderboard", "build", "--dir", str(b)])
    assert "; hard at 60%" in res.output                      # the setting stays
