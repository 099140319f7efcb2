"""The source catalog: one ref per table, every spelling parsed back, one selection grammar."""

import pytest

from imagenet_hard import catalog
from imagenet_hard.catalog import NotBuiltError, TableRef, parse, select
from imagenet_hard.errors import MissingFileError, UnknownNameError


@pytest.mark.parametrize("text, name, stem", [
    ("imagenet-a", "imagenet-a", "imagenet_a"),
    ("imagenet_a", "imagenet-a", "imagenet_a"),
    (" IMAGENET-A ", "imagenet-a", "imagenet_a"),
    ("imagenet-c/fog/3", "imagenet-c/fog/3", "imagenet_c_fog_3"),
    ("imagenet_c/zoom_blur/5", "imagenet-c/zoom_blur/5", "imagenet_c_zoom_blur_5"),
    ("imagenet_c_zoom_blur_5", "imagenet-c/zoom_blur/5", "imagenet_c_zoom_blur_5"),
    ("imagenet-c-fog-1", "imagenet-c/fog/1", "imagenet_c_fog_1"),
    ("../../etc/passwd", "../../etc/passwd", ".._.._etc_passwd"),
])
def test_every_spelling_parses_to_one_ref(text, name, stem, tmp_path):
    ref = parse(text)
    assert (ref.name, ref.stem) == (name, stem)
    assert parse(ref.name) == ref
    if ".." not in text:  # "." is not part of a real name's file form
        assert parse(ref.stem) == ref
    assert ref.path(tmp_path).parent == tmp_path / "sources"


def test_a_variant_has_its_origin_slug_and_build_command():
    ref = catalog.imagenet_c("gaussian_noise", 5)
    assert ref == parse("imagenet-c/gaussian_noise/5")
    assert ref.origin == "imagenet_c/gaussian_noise/5"
    assert catalog.parse_origin(ref.origin) == ("gaussian_noise", 5)
    assert ref.slug == "imagenet-c_gaussian_noise_5"
    assert ref.build_command() == ("imhard build --source imagenet-c --corruptions "
                                   "gaussian_noise --severities 5")
    assert TableRef("imagenet-a").build_command() == "imhard build --source imagenet-a"
    for bad in ("imagenet_c/fog/6", "imagenet_c/zoom/blur_5", "imagenet/fog/1", "imagenet_c/fog"):
        assert catalog.parse_origin(bad) is None
    assert parse("imagenet-c/fogg/3").variant is None  # no such corruption: a plain name


def _touch(home, *stems):
    folder = home / "sources"
    folder.mkdir(parents=True, exist_ok=True)
    for s in stems:
        (folder / f"{s}.parquet").write_bytes(b"")


def test_one_grammar_selects_names_globs_and_families(tmp_path):
    _touch(tmp_path, "sample", "imagenet_a", "imagenet_c_fog_1", "imagenet_c_fog_2",
           "imagenet_c_snow_1", "imagenet_c_nosuch_1", "sample.rejects")
    assert [r.name for r in catalog.built(tmp_path)] == [
        "imagenet-a", "imagenet-c/fog/1", "imagenet-c/fog/2", "imagenet-c/snow/1", "sample"]
    names = lambda items, **kw: [r.name for r in select(items, tmp_path, **kw)]  # noqa: E731
    assert names(["imagenet-c/fog/*", "sample", "imagenet_c_fog_1"]) == [
        "imagenet-c/fog/1", "imagenet-c/fog/2", "sample"]
    assert names(["imagenet-c"]) == names(["imagenet-c/*"]) == [
        "imagenet-c/fog/1", "imagenet-c/fog/2", "imagenet-c/snow/1"]
    assert names(["imagenet_c/fog"]) == ["imagenet-c/fog/1", "imagenet-c/fog/2"]
    # a family is not a prefix of names: "imagenet" selects no imagenet-a
    with pytest.raises(NotBuiltError, match="source 'imagenet' is not built"):
        select(["imagenet"], tmp_path)
    with pytest.raises(MissingFileError, match=r"pass --source 'imagenet-c/\*'"):
        select(["imagenet-c"], tmp_path, families=False)
    with pytest.raises(MissingFileError, match="--suite pattern 'x\\*' matches no built"):
        select(["x*"], tmp_path, option="--suite")


def test_not_built_is_one_error_naming_the_command_and_close_names(tmp_path):
    _touch(tmp_path, "sample", "imagenet_c_fog_1")
    with pytest.raises(NotBuiltError) as err:
        select(["sampel"], tmp_path)
    text = str(err.value)
    assert text.startswith("source 'sampel' is not built (")
    assert "run `imhard build --source sampel` first" in text
    assert "built here: imagenet-c/fog/1, sample" in text and "Did you mean: sample?" in text
    assert isinstance(err.value, UnknownNameError) and isinstance(err.value, FileNotFoundError)
