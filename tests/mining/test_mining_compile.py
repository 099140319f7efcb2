"""``imhard mine --compile``: the judge's model goes through torch.compile, run.json records it,
and a resume with the other value is refused (compiled kernels round otherwise than eager ones).
torch.compile itself is faked here (a real compile costs minutes on a CPU; tests/gpu compiles)."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from mining_support import SynthImage, make_source

from imagenet_hard.cli import main
from imagenet_hard.errors import InvalidValueError
from imagenet_hard.judges.base import ModuleJudge
from imagenet_hard.mining import mine

LABEL = 7


class Stem(torch.nn.Module):
    """Right on every crop: early exit settles each image with one forward pass."""

    def forward(self, x):
        logits = torch.zeros((x.shape[0], 1000))
        logits[:, LABEL] = 1.0
        return logits


@pytest.fixture
def fake_compile(monkeypatch):
    compiled = []

    def fake(module, **options):
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake)
    return compiled


def test_compile_is_recorded_and_a_resume_must_match(tmp_path, fake_compile):
    make_source(tmp_path, "synth", [SynthImage("a.png", (40, 30), (LABEL,), 1)])
    judge = ModuleJudge("stem", Stem(), device="cpu", precision="fp32")
    res = mine(["synth"], judge, home=tmp_path, device="cpu", workers=0, run="r", compile=True)
    assert res.finished and judge.compiled and fake_compile == [judge.model]
    record = json.loads((res.dir / "run.json").read_text())
    assert record["compile"] is True
    with pytest.raises(InvalidValueError, match="compile: run has True, asked False"):
        mine(["synth"], judge, home=tmp_path, device="cpu", workers=0, run="r")
    # a run made before the field existed ran eager: it resumes without --compile
    record.pop("compile")
    (res.dir / "run.json").write_text(json.dumps(record))
    assert mine(["synth"], ModuleJudge("stem", Stem(), device="cpu", precision="fp32"),
                home=tmp_path, device="cpu", workers=0, run="r").finished
    with pytest.raises(InvalidValueError, match="compile: run has False, asked True"):
        mine(["synth"], judge, home=tmp_path, device="cpu", workers=0, run="r", compile=True)


def test_a_judge_without_a_model_cannot_be_compiled(tmp_path, fake_compile):
    from imagenet_hard.judges.scripted import ScriptedJudge

    make_source(tmp_path, "synth", [SynthImage("a.png", (40, 30), (LABEL,), 1)])
    judge = ScriptedJudge(lambda crops: torch.full((crops.shape[0],), LABEL), name="fn")
    with pytest.raises(InvalidValueError, match="no torch model to compile"):
        mine(["synth"], judge, home=tmp_path, device="cpu", workers=0, run="s", compile=True)
    assert not (tmp_path / "mining" / "s" / "run.json").exists()


def test_compile_with_an_ensemble_is_a_usage_error():
    res = CliRunner().invoke(main, ["mine", "--source", "sample", "--judge",
                                    "efficientnet-lite0,efficientnet-lite0@bf16", "--compile"])
    assert res.exit_code == 2 and "--compile apply to one judge" in res.output


def test_flops_are_counted_on_the_eager_model(fake_compile):
    judge = ModuleJudge("conv", torch.nn.Sequential(torch.nn.Conv2d(3, 2, 32, 32),
                                                    torch.nn.Flatten(),
                                                    torch.nn.Linear(2 * 49, 1000)),
                        device="cpu", precision="fp32")
    eager = judge.flops_per_image
    del judge.__dict__["flops_per_image"]
    judge.compile()
    assert judge.compiled and judge.flops_per_image == eager
