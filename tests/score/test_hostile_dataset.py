"""A scored dataset folder and a result file are a stranger's: an image stored as a path is not
followed (it could name any file here, which would be copied where the child reads), and a split
or a predictions file name cannot be a path out of its folder."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imagenet_hard.errors import InvalidValueError
from imagenet_hard.score.result import ScoreResult
from imagenet_hard.score.sets import published_set, write_folder

SHA = "0" * 64


def _folder(tmp_path):
    return write_folder(tmp_path / "ds", [b"\x89PNG not really"], [[1]], ["a"], ["i0"])


def test_an_image_stored_as_a_path_is_not_read(tmp_path, isolated_home):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    folder = _folder(tmp_path)
    (part,) = (folder / "data").glob("validation-*.parquet")
    table = pq.read_table(part)
    image = pa.array([{"bytes": None, "path": str(secret)}], type=table.schema.field("image").type)
    pq.write_table(table.set_column(table.schema.get_field_index("image"), "image", image), part)
    with pytest.raises(InvalidValueError, match="stores its image as a path"):
        published_set(folder, home=isolated_home).images()
    copied = [p for p in isolated_home.rglob("*") if p.is_file() and b"TOPSECRET" in p.read_bytes()]
    assert copied == []


def test_a_split_is_a_name_not_a_path(tmp_path, isolated_home):
    folder = _folder(tmp_path)
    other = tmp_path / "other" / "data"
    other.mkdir(parents=True)
    for p in (folder / "data").glob("validation-*.parquet"):
        (other / p.name).write_bytes(p.read_bytes())
    assert len(published_set(folder, home=isolated_home)) == 1   # the control: a real split
    for split in ("../../other/data/validation", "/etc/passwd", "a/b", ""):
        with pytest.raises(InvalidValueError, match="is not a split name"):
            published_set(folder, split=split, home=isolated_home)


def _result(**changes) -> dict:
    data = {"submission": {"name": "x", "sha256": SHA},
            "dataset": {"id": "d", "split": "validation", "fingerprint": SHA, "rows": 1,
                        "scored": 1},
            "metrics": {"n": 1, "correct": 1, "accuracy": 1.0, "accuracy_ci95": [0.2, 1.0],
                        "top5_accuracy": 1.0, "ece": 0.0},
            "per_origin": [], "environment": {}, "date": "2026-12-07",
            "predictions": {"file": "x.predictions.parquet", "sha256": SHA}}
    for key, value in changes.items():
        data[key] = {**data[key], **value}
    return data


def test_a_result_names_its_split_and_predictions_file_not_paths():
    ScoreResult.from_dict(_result())   # the control: accepted
    for bad in ("../../elsewhere.parquet", "/abs/x.parquet", "sub/x.parquet"):
        with pytest.raises(InvalidValueError, match="predictions.file must be a file name"):
            ScoreResult.from_dict(_result(predictions={"file": bad}))
    for bad in ("../validation", "a/b", 7):
        with pytest.raises(InvalidValueError, match="dataset.split must be a split name"):
            ScoreResult.from_dict(_result(dataset={"split": bad}))
