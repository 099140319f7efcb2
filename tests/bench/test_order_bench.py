"""``imhard bench order``'s own mining path (the help example replays a run the examples mined)."""

from __future__ import annotations

import pytest
import torch

from imagenet_hard.bench.order import SAMPLE_RUN, bench_order
from imagenet_hard.errors import InvalidValueError

SORREL = 339  # the sample horse's class: this judge is right on its bright crops only


def _bright_is_sorrel(crops: torch.Tensor) -> torch.Tensor:
    bright = crops.float().mean(dim=(1, 2, 3)) > 110
    return torch.where(bright, torch.tensor(SORREL), torch.tensor(0))


@pytest.fixture
def scripted_judge(request):
    from imagenet_hard.judges import JUDGES, ScriptedJudge, register_judge

    register_judge("test-bright-sorrel")(
        lambda device=None, **kw: ScriptedJudge(_bright_is_sorrel, name="test-bright-sorrel"))
    request.addfinalizer(lambda: JUDGES._items.pop("test-bright-sorrel", None))
    return "test-bright-sorrel"


def test_bench_order_mines_photos_and_variants_and_replays_a_run(scripted_judge, tmp_path):
    mined = bench_order(scripted_judge, variants=1, home=tmp_path, device="cpu", splits=1,
                        synthetic=200, echo=lambda m: None)
    assert list(mined.results) == ["sample photos", "sample variants, random halves",
                                   "sample variants, halves by photo", "synthetic, peak S=320",
                                   "synthetic, peak S=96"]
    assert "forward passes per image" in mined.summary()
    replayed = bench_order(variants=0, home=tmp_path, splits=1, synthetic=200, run=SAMPLE_RUN,
                           echo=lambda m: None)
    assert replayed.judge == scripted_judge
    assert replayed.results[f"run {SAMPLE_RUN}"] == mined.results["sample photos"]
    with pytest.raises(InvalidValueError, match="--variants 0"):
        bench_order(variants=2, home=tmp_path, run=SAMPLE_RUN)
