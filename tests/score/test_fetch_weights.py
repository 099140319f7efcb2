"""A submission that downloads its weights on first load: the sandbox (weight caches read-only,
a missing ``$TORCH_HOME/hub/checkpoints`` not mounted at all) refuses the download with an error
naming the one command that fetches them, and after that command the same score works (issue 21,
"A newcomer's first hour")."""

from __future__ import annotations

import re
import shlex
import shutil
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from scoring_data import make_dataset, write_submission

from imagenet_hard.cli import main

#: What torchvision's ``load_state_dict_from_url`` does: create the checkpoints folder, then
#: download into it unless the file is there; here the "download" writes the file itself.
FAKE_DOWNLOAD = '''
import os
import torch

METADATA = {"name": "fake download"}

class Net:
    def __init__(self, state):
        self.bias = state["bias"]

    def predict(self, images):
        return self.bias.repeat(len(images), 1)

def load(device):
    ckpt = os.path.join(torch.hub.get_dir(), "checkpoints")
    os.makedirs(ckpt, exist_ok=True)
    path = os.path.join(ckpt, "fake-weights.pt")
    if not os.path.exists(path):
        bias = torch.zeros(1000)
        bias[7] = 1.0
        torch.save({"bias": bias}, path)
    return Net(torch.load(path))
'''

#: A submission built by the toolkit's own model loaders, whose weights are not cached.
LOADER = '''
from imagenet_hard.models import create_model

_built = create_model("torchvision:resnet18.IMAGENET1K_V1", device="cpu")
model, transform = _built.module, _built.transform
'''


@pytest.fixture
def torch_home(monkeypatch):
    """A TORCH_HOME outside /tmp: inside the sandbox /tmp is a writable scratch folder, so a
    cache under it would take a download there (as ``~/.cache/torch`` never would)."""
    if not Path("/var/tmp").is_dir():
        pytest.skip("needs /var/tmp, a folder outside the sandbox's scratch /tmp")
    home = Path(tempfile.mkdtemp(prefix="imhard-test-torch-", dir="/var/tmp"))
    monkeypatch.setenv("TORCH_HOME", str(home))
    yield home
    shutil.rmtree(home, ignore_errors=True)


def test_the_sandbox_error_names_the_fetch_command_and_that_command_makes_score_work(
        tmp_path, monkeypatch, torch_home):
    data = make_dataset(tmp_path / "ds")
    work = tmp_path / "work"
    work.mkdir()
    write_submission(work, FAKE_DOWNLOAD, "my_model.py")
    monkeypatch.chdir(work)
    ckpt = torch_home / "hub" / "checkpoints"
    assert not ckpt.exists()
    score = ["score", "my_model.py", "--dataset", str(data), "--batch-size", "4", "--out",
             str(tmp_path / "out" / "r.json")]

    res = CliRunner().invoke(main, score)
    assert res.exit_code == 1, res.output
    assert "Read-only file system" in res.output
    commands = re.findall(r"`(imhard fetch-weights [^`]+)`", res.output)
    assert commands == ["imhard fetch-weights my_model.py"], res.output
    assert not ckpt.exists()

    fetch = CliRunner().invoke(main, shlex.split(commands[0])[1:])
    assert fetch.exit_code == 0, fetch.output
    assert (ckpt / "fake-weights.pt").is_file()
    assert "fake-weights.pt" in fetch.output

    res = CliRunner().invoke(main, score)
    assert res.exit_code == 0, res.output
    assert "result:" in res.output

    again = CliRunner().invoke(main, ["fetch-weights", "my_model.py"])
    assert again.exit_code == 0 and "nothing new" in again.output, again.output


def test_fetch_weights_help_says_it_runs_the_file_unconfined():
    res = CliRunner().invoke(main, ["fetch-weights", "--help"])
    text = " ".join(res.output.split())
    assert "unconfined" in text and "only for files you trust" in text
    assert "Example:" in res.output and "imhard fetch-weights my_model.py" in res.output


def test_a_failing_fetch_is_one_message_with_the_submission_traceback(tmp_path, monkeypatch):
    write_submission(tmp_path, "def load(device):\n    raise RuntimeError('no mirror')\n", "m.py")
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["fetch-weights", "m.py"])
    assert res.exit_code == 1
    errors = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "m.py" in errors[0], res.output
    assert "RuntimeError: no mirror" in res.output


def test_missing_weights_in_the_sandbox_name_the_fetch_command_not_a_score_option(
        tmp_path, monkeypatch, torch_home):
    """The toolkit's loaders used to end with "or pass --weights PATH", which `imhard score`
    answers with "No such option"."""
    data = make_dataset(tmp_path / "ds")
    (tmp_path / "sub").mkdir()
    sub = write_submission(tmp_path / "sub", LOADER, "resnet.py")
    monkeypatch.setenv("IMHARD_OFFLINE", "1")
    res = CliRunner().invoke(main, ["score", str(sub), "--dataset", str(data), "--out",
                                    str(tmp_path / "out" / "r.json")])
    assert res.exit_code == 1, res.output
    assert "resnet18" in res.output
    assert f"`imhard fetch-weights {sub}`" in res.output
    score_options = {o for p in main.commands["score"].params for o in getattr(p, "opts", [])}
    named = set(re.findall(r"(?<!imhard mine )(?<![\w-])(--[a-z][\w-]*)", res.output))
    assert named <= score_options, named - score_options


def test_fetch_weights_that_cannot_download_does_not_point_to_itself(tmp_path, monkeypatch,
                                                                     torch_home):
    """fetch-weights runs unconfined: the sandbox's hint ("fetch them first with `imhard
    fetch-weights …`") would send the user round in a circle."""
    write_submission(tmp_path, LOADER, "resnet.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMHARD_OFFLINE", "1")
    res = CliRunner().invoke(main, ["fetch-weights", "resnet.py"])
    assert res.exit_code == 1 and "resnet18" in res.output, res.output
    assert "MissingWeightsError" in res.output
    assert "imhard fetch-weights" not in res.output and "sandbox is read-only" not in res.output
