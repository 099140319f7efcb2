"""Zoom test-time augmentation in the scoring harness: the aggregated answers of a model whose
outputs the test controls, computed by hand; cache keys, result JSON, leaderboard, refusals."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image
from scoring_data import PREDICT_FORM, write_submission

from imagenet_hard import zoom
from imagenet_hard.cli import main
from imagenet_hard.errors import SubmissionError, UnknownNameError
from imagenet_hard.score import RunOptions, load_result, score, verify
from imagenet_hard.score.tta import TTA_MODES, aggregate, get_mode, restrict

MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]

#: A model whose logits are 10× the mean red, green and blue of the crop it is shown (classes
#: 0, 1, 2), 5 for class 3 and 0 elsewhere; the crop's raw pixels are recovered from the
#: normalised input, so the answer depends only on which pixels the harness cut.
COLOUR_MODEL = f'''
import torch
from torchvision import transforms as T

MEAN, STD = {MEAN}, {STD}
METADATA = {{"name": "Colour means", "uses_tta": False}}


class ColourMeans(torch.nn.Module):
    def forward(self, x):
        raw = x * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)
        out = torch.zeros(x.shape[0], 1000)
        out[:, :3] = 10 * raw.mean(dim=(2, 3))
        out[:, 3] = 5.0
        return out


model = ColourMeans()
transform = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC),
                       T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)])
'''


def _images() -> list[Image.Image]:
    """Three photos-to-be with colour where the crops differ: halves, stripes, a corner."""
    out = []
    for k, (w, h) in enumerate([(320, 240), (200, 300), (260, 260)]):
        a = np.zeros((h, w, 3), dtype=np.uint8)
        a[:, : w // 2, 0] = 230                      # red left half
        a[:, w // 2:, 2] = 200 - 40 * k              # blue right half
        a[: h // 4, :, 1] = 250                      # green top stripe
        a[h - 30:, w - 40:] = (20 * k, 90, 160)      # a bottom-right corner patch
        out.append(Image.fromarray(a))
    return out


def _dataset(folder) -> None:
    from datasets import Dataset, Features, List, Value
    from datasets import Image as ImageF

    blobs = []
    for im in _images():
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        blobs.append({"bytes": buf.getvalue(), "path": None})
    labels = [[0], [2], [1]]
    ds = Dataset.from_dict(
        {"image": blobs, "label": labels, "origin": ["a", "a", "b"],
         "english_label": [["x"]] * 3, "id": ["i0", "i1", "i2"]},
        features=Features({"image": ImageF(), "label": List(Value("int64")),
                           "origin": Value("string"), "english_label": List(Value("string")),
                           "id": Value("string")}))
    (folder / "data").mkdir(parents=True)
    ds.to_parquet(str(folder / "data" / "validation-00000-of-00001.parquet"))


def _hand_crops(image: Image.Image, crops: str, transforms) -> np.ndarray:
    """uint8 (K, 224, 224, 3) crops, made without the harness's TTA code."""
    if crops.startswith("zoom"):
        return zoom.zoom_crops(image, transforms).permute(0, 2, 3, 1).numpy()
    w, h = image.size
    size = (256, int(256 * h / w)) if w <= h else (int(256 * w / h), 256)
    a = np.asarray(image.resize(size, Image.BICUBIC))
    H, W = a.shape[:2]
    cy, cx = int(round((H - 224) / 2)), int(round((W - 224) / 2))
    five = [a[:224, :224], a[:224, W - 224:], a[H - 224:, :224], a[H - 224:, W - 224:],
            a[cy:cy + 224, cx:cx + 224]]
    if crops == "10-crop":
        five += [np.flip(c, axis=1) for c in five]
    return np.stack(five)


def _hand_answer(image, mode) -> tuple[list[int], np.ndarray]:
    crops = _hand_crops(image, mode.crops, mode.transforms).astype(np.float64) / 255
    logits = np.zeros((len(crops), 1000))
    logits[:, :3] = 10 * crops.mean(axis=(1, 2))
    logits[:, 3] = 5.0
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    if mode.aggregate == "mean":
        agg = p.mean(axis=0)
    else:
        agg = p.max(axis=0)
        agg = agg / agg.sum()
    top5 = sorted(range(1000), key=lambda c: (-agg[c], c))[:5]
    return top5, agg[top5]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("tta")
    _dataset(root / "ds")
    return {"root": root, "data": root / "ds",
            "sub": write_submission(root, COLOUR_MODEL, "colour.py")}


MODES = [
    get_mode("zoom-224-mean"),
    get_mode("zoom-out-max"),
    restrict(get_mode("zoom-in-mean"), [zoom.transform_index(s, i, j) for s in (288, 512, 1024)
                                        for i, j in ((0, 0), (1, 1), (2, 1))], {"run": "hand"}),
    get_mode("5-crop-max"),
    get_mode("10-crop"),
]


@pytest.mark.parametrize("mode", MODES, ids=[m.name for m in MODES])
def test_aggregation_equals_the_hand_computation(setup, mode, tmp_path):
    run = score(setup["sub"], dataset=setup["data"], home=tmp_path / "home",
                options=RunOptions(batch_size=16, workers=0), tta=mode)
    preds = pq.read_table(run.predictions).to_pylist()
    for image, pred in zip(_images(), preds, strict=True):
        top5, probs = _hand_answer(image, mode)
        assert pred["top5"] == top5
        assert pred["top5_prob"] == pytest.approx(probs.tolist(), abs=2e-6)
    assert run.result.tta == mode.describe() and run.result.tta["n_crops"] == mode.n_crops
    assert run.result.name == f"Colour means (TTA {mode.name})"
    assert run.path.name == f"colour.tta-{mode.name}.json"


def test_tta_has_its_own_cache_result_and_board_row(setup, tmp_path):
    from imagenet_hard.leaderboard import add_result
    from imagenet_hard.leaderboard.entries import verified_entry
    from imagenet_hard.leaderboard.render import markdown

    home, opts = tmp_path / "home", RunOptions(batch_size=16, workers=0)
    plain = score(setup["sub"], dataset=setup["data"], home=home, options=opts)
    zoomed = score(setup["sub"], dataset=setup["data"], home=home, options=opts,
                   tta=get_mode("zoom-224-max"))
    caches = sorted(p.name for p in (home / "scores" / "cache").iterdir())
    assert len(caches) == 2 and any("-tta-zoom-224-max-" in c for c in caches)
    assert plain.result.tta is None and plain.path != zoomed.path
    assert load_result(zoomed.path).tta["mode"] == "zoom-224-max"
    # the same cache is reused on a rerun: nothing is predicted again
    again = score(setup["sub"], dataset=setup["data"], home=home, options=opts,
                  tta=get_mode("zoom-224-max"))
    assert again.resumed_rows == 3
    board = tmp_path / "board"
    for run in (plain, zoomed):
        add_result(run.path, board, dataset=setup["data"], home=home)
    names = sorted(p.name for p in (board / "results").glob("*.json"))
    assert names == ["colour-means-tta-zoom-224-max.json", "colour-means.json"]
    entries = [verified_entry(board / "results" / n) for n in names]
    assert [(e.tta_mode, e.uses_tta) for e in entries] == [("zoom-224-max", True), (None, False)]
    assert "| zoom-224-max |" in markdown(entries)
    report = verify(zoomed.path, sample=3, home=home, options=opts)
    assert report.passed and report.top1_agreement == 1.0


def test_tta_refuses_what_it_cannot_do(setup, tmp_path):
    opts = RunOptions(batch_size=16, workers=0)
    predict = write_submission(tmp_path, PREDICT_FORM, "predict.py")
    with pytest.raises(SubmissionError, match="model \\+ transform form"):
        score(predict, dataset=setup["data"], home=tmp_path, options=opts,
              tta=get_mode("5-crop"))
    grey = write_submission(tmp_path, COLOUR_MODEL.replace(
        "T.CenterCrop(224), ", "T.CenterCrop(224), T.Grayscale(3), "), "grey.py")
    with pytest.raises(SubmissionError, match="Grayscale"):
        score(grey, dataset=setup["data"], home=tmp_path, options=opts, tta=get_mode("5-crop"))
    big = write_submission(tmp_path, COLOUR_MODEL.replace("T.CenterCrop(224)", "T.CenterCrop(288)"),
                           "big.py")
    with pytest.raises(SubmissionError, match="224×224"):
        score(big, dataset=setup["data"], home=tmp_path, options=opts, tta=get_mode("5-crop"))


def test_modes_registry_and_aggregation_rules():
    assert get_mode("zoom-in-mean").n_crops == 234 and get_mode("zoom_out_max").n_crops == 81
    assert get_mode("zoom-224-mean").n_crops == 9 and get_mode("10-crop").name == "10-crop-mean"
    assert {"5-crop", "10-crop", "zoom-in-max"} <= set(TTA_MODES.names())
    with pytest.raises(UnknownNameError, match="zoom-in-mean"):
        get_mode("zoom-in-meen")
    with pytest.raises(ValueError, match="fixed"):
        restrict(get_mode("5-crop"), [1], {})
    with pytest.raises(ValueError, match="no zoom-224"):
        restrict(get_mode("zoom-224-mean"), [0, 1], {"run": "r"})
    p = np.array([[[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]]])
    assert aggregate(p, "mean")[0].tolist() == pytest.approx([0.4, 0.25, 0.35])
    assert aggregate(p, "max")[0].tolist() == pytest.approx([0.6 / 1.5, 0.3 / 1.5, 0.6 / 1.5])


def test_cli_score_with_tta(setup, tmp_path):
    args = ["score", str(setup["sub"]), "--dataset", str(setup["data"]), "--home",
            str(tmp_path), "--workers", "0", "-q"]
    res = CliRunner().invoke(main, [*args, "--tta", "zoom_224_mean", "--batch-size", "18"])
    assert res.exit_code == 0, res.output
    assert "Colour means (TTA zoom-224-mean)" in res.output
    out = json.loads((tmp_path / "scores" / "colour.tta-zoom-224-mean.json").read_text())
    assert out["tta"]["mode"] == "zoom-224-mean" and out["tta"]["n_crops"] == 9
    bad = CliRunner().invoke(main, [*args, "--tta", "zoom-in-meen"])
    assert bad.exit_code == 2 and "Did you mean: zoom-in-mean" in bad.output
    lone = CliRunner().invoke(main, [*args, "--tta-from", "some-run"])
    assert lone.exit_code == 2 and "--tta" in lone.output
    early = CliRunner().invoke(main, [*args, "--tta", "zoom-in-max", "--tta-from", "nope"])
    assert early.exit_code == 1 and "nope" in early.output and "Traceback" not in early.output


def test_a_result_naming_an_unknown_mode_is_rejected(setup, tmp_path):
    run = score(setup["sub"], dataset=setup["data"], home=tmp_path,
                options=RunOptions(batch_size=16, workers=0), tta=get_mode("zoom-224-mean"))
    data = json.loads(run.path.read_text())
    data["tta"]["mode"] = "<script>alert(1)</script>"
    run.path.write_text(json.dumps(data))
    with pytest.raises(UnknownNameError):
        load_result(run.path)
    data["tta"] = {"mode": "zoom-224-mean", "transforms": [0]}   # S=10 is not a zoom-224 crop
    run.path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="no zoom-224"):
        load_result(run.path)


def test_the_model_layers_transforms_are_readable_but_another_lambda_is_not():
    """`create_model`'s RGB step is known (the offline reference submission takes --tta); any
    other Lambda could do anything to a crop and is refused."""
    from torchvision import transforms as T

    from imagenet_hard.models import create_model
    from imagenet_hard.score.contract import ContractError
    from imagenet_hard.score.tta import normalization

    built = create_model("efficientnet-lite0", device="cpu")
    assert normalization(built.transform) == (
        [pytest.approx(v) for v in (0.485, 0.456, 0.406)],
        [pytest.approx(v) for v in (0.229, 0.224, 0.225)])
    other = T.Compose([T.Resize(256), T.CenterCrop(224), T.Lambda(lambda im: im.rotate(90)),
                       T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])
    with pytest.raises(ContractError, match="Lambda"):
        normalization(other)
