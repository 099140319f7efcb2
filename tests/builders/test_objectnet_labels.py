"""ObjectNet rows keep both label sets: the authors' single class (rule ``paper``) and every mapped
class (rule ``all-mapped``), each with its own label space, from a synthetic archive that uses the
real mapping strings of three multi-mapped ObjectNet classes."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from imagenet_hard.builders.objectnet import paper_indices, paper_labels
from source_archives import (
    OBJECTNET_CLASSES,
    make_encrypted_zip,
    objectnet_members,
)

from imagenet_hard import build_source, labels
from imagenet_hard.cli import main
from imagenet_hard.errors import InvalidValueError, UnknownNameError
from imagenet_hard.label_rules import check_objectnet_rule, objectnet_rule
from imagenet_hard.records import (
    META_LABEL_SPACES,
    META_SOURCE,
    META_VERSION,
    SourceRow,
    read_table,
    table_label_spaces,
)

PASSWORD = "objectnetisatestset"

#: The nine ObjectNet classes that map to several ImageNet classes, with their real mapping strings
#: (objectnet-1.0/mappings/objectnet_to_imagenet_1k.json), and the class the authors kept for each.
MULTI_MAPPED = {
    "Alarm clock": ("analog clock; digital clock", 409),
    "Bicycle": ("mountain bike, all-terrain bike, off-roader; bicycle-built-for-two, tandem "
                "bicycle, tandem", 671),
    "Chair": ("barber chair; folding chair; rocking chair, rocker", 423),
    "Helmet": ("football helmet; crash helmet", 560),
    "Pen": ("ballpoint, ballpoint pen, ballpen, Biro; quill, quill pen; fountain pen", 418),
    "Skirt": ("hoopskirt, crinoline; miniskirt, mini; overskirt", 601),
    "Still Camera": ("Polaroid camera, Polaroid Land camera; reflex camera", 732),
    "Tie": ("bow tie, bow-tie, bowtie; Windsor tie", 457),
    "Wheel": ("car wheel; paddlewheel, paddle wheel", 479),
}


def _indices(joined: str) -> tuple[int, ...]:
    by_lemma = {lemma: i for i, lemma in enumerate(labels.lemmas())}
    return tuple(by_lemma[n.strip()] for n in joined.split(";"))


@pytest.fixture
def objectnet_table(http_server):
    members, exp = objectnet_members()
    url = http_server.add("objectnet-1.0.zip", make_encrypted_zip(members, PASSWORD))
    table = build_source("objectnet", url=url)
    return read_table(table), exp


def _folder(row) -> str:
    return row["id"].split("/")[3]


def test_rows_keep_both_label_sets_and_both_spaces(objectnet_table):
    table, exp = objectnet_table
    rows = table.to_pylist()
    assert len(rows) == exp["rows"]
    assert {_folder(r) for r in rows} == {"alarm_clock", "banana", "bicycle", "chair"}
    spaces = table_label_spaces(table)
    paper_space = labels.label_space_indices("objectnet_113_paper", spaces)
    union = labels.label_space_indices("objectnet_113", spaces)
    assert paper_space == paper_indices() and len(paper_space) == 113
    assert union == tuple(sorted({i for v in exp["labels"].values() for i in v}))
    for row in rows:
        folder = _folder(row)
        assert row["label"] == exp["labels"][folder]          # ObjectNet's official mapping
        assert row["label_paper"] == exp["paper"][folder]     # the authors' one class
        paper = objectnet_rule(row, "paper")
        assert list(paper.label) == exp["paper"][folder]
        assert paper.label_space == "objectnet_113_paper"
        mapped = objectnet_rule(row, "all-mapped")
        assert list(mapped.label) == exp["labels"][folder]
        assert mapped.label_space == "objectnet_113"
    # Multi-mapped: the authors kept the first-listed class, and the others are outside their mask.
    for dropped in (530, 444, 559, 765):
        assert dropped in union and dropped not in paper_space


def _top1(logits: np.ndarray, space: tuple[int, ...]) -> int:
    """The authors' masking, restated: logits[:, mask].argmax, mapped back to a class index."""
    mask = np.zeros(1000, dtype=bool)
    mask[list(space)] = True
    return int(np.flatnonzero(mask)[int(logits[mask].argmax())])


def test_the_rule_changes_verdicts_in_both_directions(objectnet_table):
    table, _ = objectnet_table
    spaces = table_label_spaces(table)
    rows = {_folder(r): r for r in table.to_pylist()}

    def correct(row, logits, rule):
        judged = objectnet_rule(row, rule)
        top1 = _top1(logits, labels.label_space_indices(judged.label_space, spaces))
        return top1 in judged.label

    chair = np.zeros(1000, dtype=np.float32)
    chair[559], chair[409] = 9.0, 5.0   # folding chair first, analog clock second
    assert correct(rows["chair"], chair, "all-mapped")     # folding chair is a mapped class
    assert not correct(rows["chair"], chair, "paper")      # masked out: analog clock wins
    bike = np.zeros(1000, dtype=np.float32)
    bike[530], bike[671] = 9.0, 5.0     # digital clock first, mountain bike second
    assert not correct(rows["bicycle"], bike, "all-mapped")  # digital clock is in the union
    assert correct(rows["bicycle"], bike, "paper")           # and not in the authors' mask


def test_the_nine_real_multi_mapped_classes_give_the_authors_classes():
    classes = {c: _indices(joined) for c, (joined, _) in MULTI_MAPPED.items()}
    assert all(len(v) >= 2 for v in classes.values())
    got = paper_labels(classes, paper_indices())
    assert got == {c: kept for c, (_, kept) in MULTI_MAPPED.items()}


@pytest.mark.parametrize("mapping, needle", [
    ({"chair": ("Chair", "folding chair; rocking chair, rocker")},
     "'Chair' maps to 559 folding chair (n03376595), 765 rocking chair (n04099969), of which 0"),
    ({"chair": ("Chair", "barber chair; analog clock")}, "of which 2 are among"),
    ({"alarm_clock": ("Alarm clock", "analog clock"), "chair": ("Chair", "analog clock")},
     "both map to the authors' class 409 analog clock"),
])
def test_a_mapping_the_authors_list_contradicts_fails_the_build(http_server, mapping, needle):
    classes = {**OBJECTNET_CLASSES, **mapping}
    members, _ = objectnet_members(classes=classes)
    url = http_server.add("objectnet-1.0.zip", make_encrypted_zip(members, PASSWORD))
    with pytest.raises(InvalidValueError, match="objectnet_paper_wnids.txt|both map") as err:
        build_source("objectnet", url=url)
    assert needle in str(err.value)


def _v1_objectnet_table(path):
    """An ObjectNet table as imagenet-hard wrote it before label_paper existed (version 1)."""
    schema = pa.schema([
        ("id", pa.string()), ("origin", pa.string()), ("path", pa.string()),
        ("label", pa.list_(pa.int64())), ("english_label", pa.list_(pa.string())),
        ("label_space", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
        ("sha256", pa.string()),
    ])
    row = {"id": "objectnet/objectnet-1.0/images/chair/a.png", "origin": "objectnet",
           "path": "sources/objectnet/a.png", "label": [423, 559, 765],
           "english_label": labels.english_labels([423, 559, 765]),
           "label_space": "objectnet_113", "width": 8, "height": 8, "sha256": "0" * 64}
    meta = {META_VERSION: b"1", META_SOURCE: b"objectnet",
            META_LABEL_SPACES: json.dumps({"objectnet_113": [423, 559, 765]}).encode()}
    pq.write_table(pa.Table.from_pylist([row], schema=schema.with_metadata(meta)), path)
    return path


def test_an_old_table_is_read_and_the_paper_rule_asks_for_a_rebuild(tmp_path):
    table = read_table(_v1_objectnet_table(tmp_path / "objectnet.parquet"))
    row = table.to_pylist()[0]
    assert row["label_paper"] is None
    assert objectnet_rule(row, "all-mapped").label == (423, 559, 765)
    with pytest.raises(InvalidValueError, match="imhard build --source objectnet --force"):
        objectnet_rule(row, "paper")
    with pytest.raises(InvalidValueError, match="imhard build --source objectnet --force"):
        labels.label_space_indices("objectnet_113_paper", table_label_spaces(table))
    SourceRow(**row)  # an upgraded row is still a valid record


def test_an_unknown_source_table_version_is_rejected_with_the_rebuild_command(tmp_path):
    path = _v1_objectnet_table(tmp_path / "objectnet.parquet")
    table = pq.read_table(path)
    meta = {**table.schema.metadata, META_VERSION: b"9"}
    pq.write_table(table.replace_schema_metadata(meta), path)
    with pytest.raises(InvalidValueError, match=r"rebuild it with `imhard build --source "
                                                r"objectnet --force`"):
        read_table(path)


def test_other_sources_and_rule_names():
    row = {"id": "imagenet_a/x.jpg", "label": [6], "label_space": "in_a_200", "label_paper": None}
    for rule in ("paper", "all-mapped", "all_mapped", "ALL-MAPPED"):
        assert objectnet_rule(row, rule).label == (6,)
        assert objectnet_rule(row, rule).label_space == "in_a_200"
    with pytest.raises(UnknownNameError, match="Did you mean: paper"):
        check_objectnet_rule("papr")
    with pytest.raises(InvalidValueError, match="not among label"):
        SourceRow(id="objectnet/a.png", origin="objectnet", path="a.png", label=[423, 559],
                  english_label=labels.english_labels([423, 559]), label_space="objectnet_113",
                  width=4, height=4, sha256="0" * 64, label_paper=[409])


def test_the_build_says_which_class_the_authors_kept(http_server):
    members, _ = objectnet_members()
    url = http_server.add("objectnet-1.0.zip", make_encrypted_zip(members, PASSWORD))
    res = CliRunner().invoke(main, ["build", "--source", "objectnet", "--url", url])
    assert res.exit_code == 0, res.output
    assert ("'Chair' maps to 423 barber chair (n02791124), 559 folding chair (n03376595), "
            "765 rocking chair (n04099969); the authors' label (label_paper) is 423 barber chair"
            in res.output)
    assert "'Banana' maps" not in res.output  # single-mapped classes need no note
    assert "the mapping lists 4 ObjectNet classes" in res.output
