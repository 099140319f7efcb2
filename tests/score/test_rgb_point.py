"""Scoring converts to RGB where the authors' notebook did: after Resize(256) and CenterCrop(224).

A palette image with transparency and an RGBA image are stored in a scoring dataset, read as the
worker reads them and run through the worker's model-form path; the tensor the model receives must equal
a test-local restatement of the authors' transform on the same decoded images, and differ from
converting to RGB first (which the last test shows the check would catch).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import v2

from imagenet_hard.models.preprocess import IMAGENET_MEAN, IMAGENET_STD
from imagenet_hard.score import worker
from imagenet_hard.score.rgb_point import RGBAfterResizeCrop, rgb_after_resize_crop
from imagenet_hard.score.sets import published_set, write_folder


def _photo(seed: int, size=(331, 257)) -> np.ndarray:
    """Smooth colour gradients plus noise: resampling filters give visibly different pixels."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (w + h)], axis=-1)
    return np.clip(base + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def palette_png() -> bytes:
    im = Image.fromarray(_photo(1)).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    im.info["transparency"] = 0  # palette entry 0 is transparent
    return _png(im)


def rgba_png() -> bytes:
    rgb = _photo(2)
    h, w = rgb.shape[:2]
    alpha = np.tile(np.linspace(0, 255, w, dtype=np.uint8), (h, 1))
    alpha[:, ::7] = 0  # fully transparent columns whose colours are not black
    return _png(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"))


def rgb_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_photo(3)).save(buf, "JPEG")
    return buf.getvalue()


NORMALIZE = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
#: What a reference submission hands the harness: no conversion of its own.
SUBMISSION = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), NORMALIZE])
#: The authors' notebook transform, restated here (Benchmark_ImageNet_Hard.ipynb, "Transforms").
AUTHORS = T.Compose([T.Resize(256), T.CenterCrop(224), T.Lambda(lambda im: im.convert("RGB")),
                     T.ToTensor(), NORMALIZE])


@pytest.fixture(scope="module")
def decoded(tmp_path_factory):
    """The three images as the worker reads them (Arrow files, decoded by the toolkit's image rule)."""
    folder = write_folder(tmp_path_factory.mktemp("rgb") / "ds",
                          [palette_png(), rgba_png(), rgb_jpeg()], [[1], [2], [3]],
                          ["test"] * 3, ["palette", "rgba", "rgb"])
    sd = published_set(folder, home=tmp_path_factory.mktemp("home"))
    ds = worker._open_images(sd.images()[0])
    assert [ds.image(i).mode for i in range(3)] == ["P", "RGBA", "RGB"]
    return ds


class Recorder(torch.nn.Module):
    def forward(self, x):
        self.seen = x.clone()
        return torch.zeros(len(x), 1000)


def through_worker(ds, transform) -> torch.Tensor:
    model = Recorder()
    chunk, run = next(worker._batches_model(model, transform, ds, [0, 1, 2], 3, "cpu", 0))
    assert list(chunk) == [0, 1, 2]
    run()
    return model.seen


def restated(ds, transform, convert_first: bool) -> torch.Tensor:
    images = [ds.image(i) for i in range(3)]
    return torch.stack([transform(im.convert("RGB") if convert_first else im) for im in images])


@pytest.mark.parametrize("transform", [SUBMISSION, AUTHORS], ids=["no-own-convert", "authors"])
def test_worker_tensor_equals_the_authors_order(decoded, transform):
    ours = through_worker(decoded, transform)
    authors = restated(decoded, AUTHORS, convert_first=False)
    assert torch.equal(ours, authors)
    first = restated(decoded, SUBMISSION, convert_first=True)
    for k, name in enumerate(["palette", "rgba"]):
        gap = (authors[k] - first[k]).abs().max().item()
        assert gap > 0.1, f"{name}: converting first should change pixels, max gap {gap}"
    assert torch.equal(authors[2], first[2])  # an RGB photo is the same either way


def test_converting_first_would_fail_that_check(decoded, monkeypatch):
    monkeypatch.setattr(worker, "rgb_after_resize_crop",
                        lambda t: RGBAfterResizeCrop((), (t,)))  # the old behaviour
    ours = through_worker(decoded, SUBMISSION)
    assert not torch.equal(ours, restated(decoded, AUTHORS, convert_first=False))
    assert torch.equal(ours, restated(decoded, SUBMISSION, convert_first=True))


class ModeSpy:
    def __init__(self):
        self.modes = []

    def __call__(self, im):
        self.modes.append(im.mode)
        return im


def test_submission_code_only_ever_sees_rgb(decoded):
    spy = ModeSpy()
    staged = rgb_after_resize_crop(T.Compose([T.Resize(256), T.CenterCrop(224), spy, T.ToTensor()]))
    assert len(staged.head) == 2
    first = ModeSpy()
    plain = ModeSpy()
    leading = rgb_after_resize_crop(T.Compose([first, T.Resize(256), T.ToTensor()]))
    assert leading.head == ()
    function_form = rgb_after_resize_crop(lambda im: T.functional.to_tensor(plain(im)))

    class OwnCompose(T.Compose):  # a subclass may rely on its own __call__: not split
        pass

    own = rgb_after_resize_crop(OwnCompose([T.Resize(256), T.CenterCrop(224), T.ToTensor()]))
    assert own.head == ()
    for i in range(3):
        im = decoded.image(i)
        for t in (staged, leading, function_form):
            t(im)
    assert spy.modes == first.modes == plain.modes == ["RGB"] * 3


def test_torchvision_v2_compose_is_split_the_same_way(decoded):
    v2_submission = v2.Compose([v2.Resize(256), v2.CenterCrop(224), v2.ToImage(),
                                v2.ToDtype(torch.float32, scale=True), NORMALIZE])
    staged = rgb_after_resize_crop(v2_submission)
    assert len(staged.head) == 2
    ours = torch.stack([staged(decoded.image(i)) for i in range(3)])
    authors = restated(decoded, AUTHORS, convert_first=False)
    assert torch.allclose(ours, authors, atol=1e-5)


def test_predict_form_receives_rgb(decoded):
    class Predictor:
        def predict(self, images):
            self.modes = [im.mode for im in images]
            return np.zeros((len(images), 1000), dtype=np.float32)

    pred = Predictor()
    _, run = next(worker._batches_predict(pred, decoded, [0, 1, 2], 3))
    run()
    assert pred.modes == ["RGB"] * 3


#: clip.load's preprocessing (openai/CLIP clip.py ``_transform``): Resize(224, bicubic),
#: CenterCrop(224), convert("RGB"), ToTensor, Normalize(CLIP mean/std), restated here.
CLIP_LOAD = T.Compose([T.Resize(224, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224),
                       T.Lambda(lambda im: im.convert("RGB")), T.ToTensor(),
                       T.Normalize((0.48145466, 0.4578275, 0.40821073),
                                   (0.26862954, 0.26130258, 0.27577711))])


class RecorderWithWeight(Recorder):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))  # Model.predict reads the device from it


def test_model_layer_predictor_converts_where_clip_load_does(decoded):
    """The CLIP reference submission's ``load()`` returns the model layer's Model: it gets the
    stored-mode image and converts after the centre crop, as clip.load's transform does."""
    from imagenet_hard.models import Model, ModelInfo, Preprocess
    from imagenet_hard.models.preprocess import CLIP_MEAN, CLIP_STD

    module = RecorderWithWeight()
    model = Model("clip-vit-l-14", module, Preprocess(224, 224, "bicubic", CLIP_MEAN, CLIP_STD),
                  ModelInfo("clip-vit-l-14", "", "test", 1, "zero-shot"))
    _, run = next(worker._batches_predict(model, decoded, [0, 1, 2], 3))
    run()
    expected = restated(decoded, CLIP_LOAD, convert_first=False)
    assert torch.allclose(module.seen, expected, atol=1e-6)
    first = restated(decoded, CLIP_LOAD, convert_first=True)
    assert (expected[:2] - first[:2]).abs().amax().item() > 0.1  # the check can fail
