"""Every `Example:` of every `imhard … --help` runs, in order, as a user would type it.

The examples are read from the commands' help and run one after another in one workspace: a fake
user HOME (so `~/.cache/imagenet-hard` is the data home the examples name), a working folder with
a copy of `leaderboard/submissions` and the user's own files the examples name (`my_model.py`,
`photo1.jpg`, …). `~` is expanded as a shell would; `/tmp/` names a folder of the workspace;
`torchrun … -m imagenet_hard ARGS` runs `imhard ARGS` in this one process.

:data:`PLAN` lists every example command with what it must do. Those that cannot run here (no
network, no GPU, no Hub account, no CLIP ViT-L weights, no ImageNet tar) say why and must fail
as a user would see it: exit 1 (2 for a file click finds missing), exactly one `Error:` line
naming the problem, and nothing written. An example missing from the plan, or a plan entry no
help shows any more, fails :func:`test_the_plan_lists_every_example`.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner
from help_support import ALL_EXAMPLES, WORDS

from imagenet_hard.cli import main

REPO = Path(__file__).resolve().parents[2]

# One worker runs them all, in order (pytest-xdist's `--dist loadfile`): later examples use what
# earlier ones made, and the review server examples listen on the fixed port 8765.


@dataclass(frozen=True)
class Runs:
    """Exits 0 with no `Error:`; ``shows`` must be in its output; ``before`` prepares a file
    the example names as the user's own."""

    shows: str = ""
    before: object = None


@dataclass(frozen=True)
class Fails:
    """Cannot run here (``why``): exit ``code``, one `Error:` line containing ``says``, and
    nothing written."""

    why: str
    says: str
    code: int = 1
    cache: str = ""  # a folder under the data home of reusable work it may leave (say why)


@dataclass(frozen=True)
class Serves:
    """A server: started as its own process, must print its address, then stopped."""

    url: str


@dataclass(frozen=True)
class RunBy:
    """Run by ``test`` (a file under tests/), which takes the example from the help itself and
    checks far more of its output; run once, not twice, since it is the slowest example."""

    test: str


def _copy_export(work: Workspace) -> None:
    shutil.copyfile(work.cwd / "decisions.parquet", work.cwd / "colleague-decisions.parquet")


NO_NET = "downloads from the network, which this machine does not have"
NO_GPU = "needs a CUDA device"

#: Every example command, in the order they run (later ones use what earlier ones made).
PLAN: dict[str, Runs | Fails | Serves | RunBy] = {
    # build and mine the sample source, look around
    "imhard build --source sample": Runs("sample: kept 9"),
    "imhard mine --source sample --judge efficientnet-lite0": Runs("candidates of 9 images"),
    "imhard mine --source sample --judge efficientnet-lite0 --device cpu":
        Runs("resumed: 9 images"),
    "imhard mine --source sample --judge efficientnet-lite0,efficientnet-lite0@bf16 --rule all --limit 2":
        Runs("rule all; judges, cheapest first"),
    "imhard sources": Runs("the installed scikit-image and matplotlib packages"),
    "imhard sources --home /tmp/imhard-demo": Runs("not built"),
    "imhard doctor": Runs(),
    "imhard models": Runs("(default judge)"),
    "imhard models timm resnet5*": Runs("resnet50"),
    # sources and runs this machine cannot have
    "imhard build --source imagenet-a": Fails(NO_NET, "imagenet-a.tar was not downloaded"),
    "imhard build --source imagenet --path ~/data/ILSVRC2012_img_val.tar":
        Fails("ImageNet's validation tar is not on this machine", "does not exist", code=2),
    "imhard build --source imagenet-r --url http://mirror.local/imagenet-r.tar --sha256 "
    "8a7c4c3e2f6b4ba4bd7ad6ef4c7b1ba0cfbbc9ab7b7e0c2c5b0bd4a74bde8e50":
        Fails(NO_NET, "http://mirror.local/imagenet-r.tar was not downloaded"),
    "imhard build --source imagenet-c --from imagenet-real --corruptions paper --severities 1-5":
        Fails(f"imagenet-real {NO_NET}", "'imagenet-real', which is not built here"),
    "imhard build --source imagenet-c --from imagenet":
        Fails("torchrun over 4 processes, from ImageNet (not here)",
              "'imagenet', which is not built here"),
    "imhard mine --source imagenet-a,imagenet-r --exhaustive --run clip-ar-full":
        Fails(f"CLIP ViT-L weights and sources that {NO_NET}", "'imagenet-a' is not built"),
    "imhard mine --source imagenet-a --order-from clip-ar-full":
        Fails("the run of the example above", "no mining run 'clip-ar-full'"),
    "imhard mine --source objectnet --weights ~/models/vit-l-14-openai.bin --precision bf16":
        Fails("OpenAI's ViT-L/14 weights are not on this machine", "does not exist", code=2),
    "imhard mine --source imagenet --run-name in-clip":
        Fails("torchrun over 8 GPUs, on ImageNet (not here)", "'imagenet' is not built"),
    # the zoom analyses of an exhaustive run
    "imhard mine --source sample --judge efficientnet-lite0 --exhaustive --limit 3 --run sample-full":
        Runs("(exhaustive)"),
    "imhard analyze sample-full --out sample-analysis": Runs("report:"),
    "imhard analyze heldout --run sample-full --models efficientnet-lite0 --precision bf16":
        Runs("judge's weights"),
    # review the run the first example mined (its one candidate is the horse)
    "imhard review import --run efficientnet-lite0__sample": Runs("1 candidates under review"),
    "imhard review status": Runs(),
    "imhard review status --origin objectnet": Runs(),
    "imhard review list --verdict pending --limit 5": Runs("horse.png"),
    "imhard review decide sample/n02389026/horse.png --verdict keep --tags rare-case":
        Runs("keep: sample/n02389026/horse.png"),
    "imhard review decide sample/n02389026/horse.png --verdict remove --reason ill-posed "
    "--note a silhouette": Runs("remove (ill-posed)"),
    "imhard review undo": Runs("undid remove"),
    "imhard review undo sample/n02389026/horse.png": Runs("undid keep"),
    "imhard review history sample/n02389026/horse.png": Runs("undo of #"),
    "imhard review relabel sample/n02389026/horse.png --label 339 --label horse-drawn vehicle "
    "--reason a cart is in view": Runs("relabelled sample/n02389026/horse.png → [339, 603]"),
    "imhard review export --out decisions.parquet": Runs("decisions →"),
    "imhard review apply colleague-decisions.parquet":
        Runs("0 decisions added", before=_copy_export),
    "imhard review serve": Serves("http://127.0.0.1:8765/"),
    "imhard review serve --port 8765": Serves("http://127.0.0.1:8765/"),
    # publish, score, verify, the leaderboard
    "imhard publish --run efficientnet-lite0__sample --include-pending": Runs("published 1 images"),
    "imhard publish --run efficientnet-lite0__sample --include-pending --version 1.0.0":
        Runs("version 1.0.0: added 1 (sample 1)"),
    "imhard publish --check ~/.cache/imagenet-hard/dist/imagenet-hard": Runs("OK — 1 rows"),
    "imhard diff 1.0.0 ~/.cache/imagenet-hard/dist/imagenet-hard --limit 5":
        Runs("0 changes: no row changed"),
    "imhard publish --run clip-all --push me/imagenet-hard --private":
        Fails("a CLIP ViT-L run and a Hub account", "no mining run 'clip-all'"),
    "imhard score leaderboard/submissions/efficientnet_lite0.py --limit 500": Runs("result:"),
    "imhard fetch-weights my_model.py": Runs("nothing new"),   # its weights ship in a package
    "imhard score my_model.py --dataset taesiri/imagenet-hard --device cuda --no-network":
        Fails(f"{NO_GPU}, and the dataset {NO_NET}", "taesiri/imagenet-hard"),
    "imhard score my_model.py --memory-limit 16G": Runs("result:"),
    "imhard score my_model.py --suite": Runs("result:"),
    "imhard score my_model.py --suite --tta zoom-in-mean --tta-from sample-full":
        Runs("TTA zoom-in-mean"),
    "imhard score my_model.py --suite imagenet-a,imagenet-r,objectnet":
        Fails(f"the sets {NO_NET}", "imagenet-a"),
    "imhard score leaderboard/submissions/resnet50.py --tta zoom-in-max --batch-size 128":
        Fails(f"torchvision's ResNet-50 weights {NO_NET}", "resnet50",
              cache="scores/cache"),  # the decoded dataset, made before the model loads
    "imhard verify ~/.cache/imagenet-hard/scores/efficientnet_lite0.json --sample 100":
        Runs("PASS: re-ran 1 sampled rows"),
    "imhard verify ~/.cache/imagenet-hard/scores/my_model.suite.json --sample 20":
        Runs("PASS: 2 sets"),
    "imhard leaderboard add ~/.cache/imagenet-hard/scores/my_model.json": Runs("added My model"),
    "imhard leaderboard add ~/.cache/imagenet-hard/scores/efficientnet_lite0.json": Runs("added"),
    "imhard leaderboard add ~/.cache/imagenet-hard/scores/my_model.suite.json": Runs("added"),
    "imhard leaderboard build": Runs("wrote"),
    "imhard leaderboard build --dir leaderboard": Runs("wrote"),
    "imhard leaderboard rescore-on 1.0.0": Runs("scored on 1.0.0"),
    "imhard review import-label-errors --version 1.0.0 --min-models 1":
        Runs("label-error candidates among 1 images"),
    "imhard review label-errors --pending": Runs(),
    "imhard leaderboard push --space me/imagenet-hard-leaderboard":
        Fails("a Hugging Face account and the network", "me/imagenet-hard-leaderboard"),
    # host a board: submit, the worker, the queue (a folder board)
    "imhard submit my_model.py --board /tmp/board": Runs("filed request"),
    "imhard host run --board /tmp/board --once": Runs("requests handled: 1"),
    "imhard host status --board /tmp/board": Runs("FINISHED"),
    "imhard host compare --board /tmp/board ENTRY_A ENTRY_B":
        Fails("it names two verified entries; the example board has one", "ENTRY_A"),
    # benchmarks
    "imhard bench zoom --images 4": Runs("ours / reference"),
    "imhard bench zoom photo1.jpg photo2.jpg --device cuda": Fails(NO_GPU, "cuda"),
    "imhard bench score --images 32 --batch-size 32": RunBy("bench/test_score_bench.py"),
    "imhard bench score --suite 4 --images 32 --repeat 1": RunBy("bench/test_score_bench.py"),
    "imhard bench mine --images 1 --device cpu": Runs("ratio"),
    "imhard bench mine --judge efficientnet-lite0,efficientnet-lite0@bf16 --images 1 --device cpu":
        Runs("ensemble ≤ sum of singles: yes in forward passes"),
    "imhard bench mine --judge open_clip:ViT-L-14/random --images 32 --batch-size 256 "
    "--device cuda": Fails(NO_GPU, "cuda"),
    "imhard bench protocol --images 1 --device cpu --vary bf16": Runs("bf16"),
    "imhard bench protocol --judge open_clip:ViT-B-32/openai --images 32 --device cuda":
        Fails(NO_GPU, "cuda"),
    "imhard bench protocol --judge open_clip:ViT-B-32/openai --device cuda --precision fp16 "
    "--vary math": Fails(NO_GPU, "cuda"),
    "imhard bench corrupt --corruptions zoom_blur,contrast --repeat 1": Runs("zoom_blur"),
    "imhard bench corrupt --size 1600x1200 --corruptions zoom_blur,glass_blur --repeat 1":
        Runs("glass_blur"),
    "imhard bench analyze --images 13000": Runs("ratio"),
    "imhard bench order --run sample-full --splits 2":
        Runs("forward passes"),
    "imhard bench host --images 8 --entries 10 --rows 200": Runs("board rebuild s"),
    "imhard bench memory --rows 200,800 --side 16": Runs("largest peak ÷ smallest"),
    "imhard bench gpu --only corrupt": Runs("zoom_blur"),
    # everything at once, in its own home
    "imhard demo --home /tmp/imhard-demo": RunBy("cli/test_demo.py"),
}

#: Planned failures another machine may not have, by what would let the example go further there:
#: ``gpu`` (torch sees a CUDA device) or ``net:HOST`` (a download from HOST could start). Where the
#: machine has it, the example is skipped: its failure cannot be shown there.
FAILS_UNLESS = {
    "imhard build --source imagenet-a": "net:people.eecs.berkeley.edu",
    "imhard build --source imagenet-r --url http://mirror.local/imagenet-r.tar --sha256 "
    "8a7c4c3e2f6b4ba4bd7ad6ef4c7b1ba0cfbbc9ab7b7e0c2c5b0bd4a74bde8e50": "net:mirror.local",
    "imhard score my_model.py --dataset taesiri/imagenet-hard --device cuda --no-network":
        "net:huggingface.co",
    "imhard score leaderboard/submissions/resnet50.py --tta zoom-in-max --batch-size 128":
        "net:download.pytorch.org",
    "imhard bench zoom photo1.jpg photo2.jpg --device cuda": "gpu",
    "imhard bench mine --judge open_clip:ViT-L-14/random --images 32 --batch-size 256 "
    "--device cuda": "gpu",
    "imhard bench protocol --judge open_clip:ViT-B-32/openai --images 32 --device cuda": "gpu",
    "imhard bench protocol --judge open_clip:ViT-B-32/openai --device cuda --precision fp16 "
    "--vary math": "gpu",
}


def machine_has(what: str) -> bool:
    """Whether this machine has ``what`` of :data:`FAILS_UNLESS`, judged as the code judges it:
    ``gpu`` when ``torch.cuda.is_available()`` (imagenet_hard.devices); ``net:HOST`` unless
    IMHARD_OFFLINE/HF_HUB_OFFLINE turn downloads off (imagenet_hard.models.weights.offline) or
    HOST does not answer (a name that does not resolve, a refused connection, no route)."""
    if what == "gpu":
        import torch

        return torch.cuda.is_available()
    from imagenet_hard.models.weights import offline

    if offline():
        return False
    try:
        socket.create_connection((what.removeprefix("net:"), 443), timeout=5).close()
    except OSError:
        return False
    return True


def test_machine_conditions_are_on_planned_failures():
    assert set(FAILS_UNLESS) <= set(PLAN)
    for example, what in FAILS_UNLESS.items():
        assert isinstance(PLAN[example], Fails), example
        assert what == "gpu" or what.startswith("net:"), what
    needs_gpu = {k for k, v in PLAN.items() if isinstance(v, Fails) and NO_GPU in v.why}
    assert {k for k, v in FAILS_UNLESS.items() if v == "gpu"} <= needs_gpu



def test_every_command_has_an_example():
    assert len(ALL_EXAMPLES) > 20
    assert not [c for c, ex in ALL_EXAMPLES.items() if not ex], "commands without an Example:"


def test_the_plan_lists_every_example():
    shown = {_imhard(" ".join(e)) for ex in ALL_EXAMPLES.values() for e in ex}
    assert shown - set(PLAN) == set(), "examples the plan does not say how to run"
    assert set(PLAN) - shown == set(), "plan entries no --help shows"


def _imhard(example: str) -> str:
    """`torchrun … -m imagenet_hard ARGS` → `imhard ARGS` (run in this process)."""
    return re.sub(r"^torchrun .*?-m imagenet_hard ", "imhard ", example)


@dataclass
class Workspace:
    root: Path
    user: Path = field(init=False)   # HOME
    cwd: Path = field(init=False)

    def __post_init__(self):
        self.user, self.cwd = self.root / "user", self.root / "cwd"

    @property
    def home(self) -> Path:
        return self.user / ".cache" / "imagenet-hard"

    def argv(self, example: str) -> list[str]:
        words = next(w for k, w in WORDS.items() if _imhard(k) == example)
        words = words[words.index("imagenet_hard") + 1:] if words[0] == "torchrun" else words[1:]
        out = []
        for w in words:
            if w.startswith("~/"):
                w = str(self.user / w[2:])
            elif w.startswith("/tmp/"):
                w = str(self.root / "tmp" / w[5:])
            out.append(w)
        return out

    def files(self, cache: str = "") -> dict[str, tuple[int, int]]:
        skip = str(self.home / cache) if cache else None
        return {str(p): (p.stat().st_size, p.stat().st_mtime_ns)
                for p in self.root.rglob("*")
                if not (skip and (str(p) + "/").startswith(skip + "/"))}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from importlib import resources

    work = Workspace(tmp_path_factory.mktemp("help_examples"))
    (work.root / "tmp").mkdir()
    work.user.mkdir()
    shutil.copytree(REPO / "leaderboard" / "submissions", work.cwd / "leaderboard" / "submissions")
    own = (REPO / "leaderboard" / "submissions" / "efficientnet_lite0.py").read_text()
    (work.cwd / "my_model.py").write_text(own.replace('"name": "EfficientNet-Lite0"',
                                                      '"name": "My model"'))
    for name, (package, resource) in {"photo1.jpg": ("skimage", "data/rocket.jpg"),
                                      "photo2.jpg": ("matplotlib",
                                                     "mpl-data/sample_data/grace_hopper.jpg")}.items():
        with resources.as_file(resources.files(package).joinpath(resource)) as f:
            shutil.copyfile(f, work.cwd / name)
    return work


@pytest.fixture
def user(workspace, monkeypatch):
    """The workspace as the environment of a user typing the examples."""
    from imagenet_hard import download

    monkeypatch.setenv("HOME", str(workspace.user))
    monkeypatch.delenv("IMHARD_HOME", raising=False)
    monkeypatch.chdir(workspace.cwd)
    # A download fails at once here; the test does not sit out the retries' back-off.
    monkeypatch.setitem(download.download.__kwdefaults__, "backoff", 0.0)
    return workspace


def _serve(work: Workspace, argv: list[str]) -> str:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "imagenet_hard", *argv], cwd=work.cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = proc.stdout.readline()
    finally:
        proc.terminate()
        rest, _ = proc.communicate(timeout=60)
    return first + rest


@pytest.mark.slow
@pytest.mark.parametrize("example", list(PLAN))
def test_example_runs(example, user):
    expect = PLAN[example]
    argv = user.argv(example)
    if isinstance(expect, RunBy):
        assert "help_example(" in (REPO / "tests" / expect.test).read_text()
        return
    if isinstance(expect, Serves):
        out = _serve(user, argv)
        assert expect.url in out.splitlines()[0], out
        return
    if example in FAILS_UNLESS and machine_has(FAILS_UNLESS[example]):
        pytest.skip(f"this machine has {FAILS_UNLESS[example]}: {expect.why} does not hold here")
    if isinstance(expect, Runs) and expect.before:
        expect.before(user)
    before = user.files(getattr(expect, "cache", ""))
    res = CliRunner().invoke(main, argv)
    errors = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
    if isinstance(expect, Runs):
        assert res.exit_code == 0 and not errors, f"{example}\n{res.output}"
        assert expect.shows in res.output, res.output
        return
    assert res.exit_code == expect.code, f"{example}\n{res.output}"
    assert len(errors) == 1 and expect.says in errors[0], res.stderr
    assert user.files(expect.cache) == before, f"{example} ({expect.why}) wrote something"
