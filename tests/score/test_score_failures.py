"""Every way a submission can fail gives its own message and a non-zero exit; a killed run resumes;
the child sees no secrets and, with --no-network, no network."""

from __future__ import annotations

import socket
import threading

import pytest
from click.testing import CliRunner
from scoring_data import DECODE, PREDICT_FORM, make_dataset, write_submission

from imagenet_hard.cli import main
from imagenet_hard.errors import SubmissionError
from imagenet_hard.sandbox import child_env
from imagenet_hard.score import RunOptions, score

ORACLE = DECODE + '''
class Oracle:
    def predict(self, images):
        return np.stack([decode(im) for im in images])
'''

FAILURES = {
    "import-error": ("import numpy\nimport no_such_module_xyz\n",
                     ["importing the submission failed", "ModuleNotFoundError",
                      "no_such_module_xyz", "submission.py\", line 2"]),
    "exception": (ORACLE + '''
def shaky(images):
    return 1 / 0

class Bad(Oracle):
    def predict(self, images):
        return shaky(images)

def load(device):
    return Bad()
''', ["raised an exception on rows 0–3", "ZeroDivisionError", "in shaky", "return 1 / 0"]),
    "wrong-shape": (ORACLE + '''
def load(device):
    class Short(Oracle):
        def predict(self, images):
            return super().predict(images)[:, :10]
    return Short()
''', ["bad output on rows 0–3", "wrong output shape (4, 10)", "expected (4, 1000)"]),
    "nan": (ORACLE + '''
def load(device):
    class NaN(Oracle):
        calls = 0
        def predict(self, images):
            out = super().predict(images)
            self.calls += 1
            if self.calls == 2:
                out[1, 7] = float("nan")
            return out
    return NaN()
''', ["bad output on rows 4–7", "NaN or infinite values in 1 of 4 rows", "row 1"]),
    "contract": ("X = 1\n", ["does not follow the submission contract", "load(device)"]),
    "no-predict": ("def load(device):\n    return 42\n", ["returned int, which has no `predict"]),
    "timeout": (ORACLE + '''
import time
def load(device):
    class Slow(Oracle):
        def predict(self, images):
            time.sleep(60)
    return Slow()
''', ["the batch at rows 0–3 exceeded --timeout 1 s", "process was killed"]),
    "signal": (ORACLE + '''
import os, signal
def load(device):
    class Die(Oracle):
        def predict(self, images):
            print("about to die")
            os.kill(os.getpid(), signal.SIGKILL)
    return Die()
''', ["died from signal SIGKILL while working on rows 0–3", "about to die"]),
}


@pytest.mark.parametrize("kind", list(FAILURES))
def test_failure_gives_message_and_nonzero_exit(tmp_path, kind):
    body, needles = FAILURES[kind]
    data = make_dataset(tmp_path / "ds")
    sub = write_submission(tmp_path, body)
    res = CliRunner().invoke(main, ["score", str(sub), "--dataset", str(data), "--batch-size", "4",
                                    "--timeout", "1", "--quiet"])
    assert res.exit_code == 1, res.output
    for needle in needles:
        assert needle in res.output, (needle, res.output)
    assert "imagenet_hard/score" not in res.output  # the harness's own frames are trimmed


def test_killed_run_resumes_from_finished_batches(tmp_path, monkeypatch):
    # The sandbox keeps nothing the child writes outside its output folder, so the submission
    # reports its calls on stdout and learns from the environment when to die.
    data = make_dataset(tmp_path / "ds")
    sub = write_submission(tmp_path, PREDICT_FORM + """
import os
_inner = load

def load(device):
    oracle = _inner(device)
    class Flaky:
        calls = 0
        def predict(self, images):
            self.calls += 1
            print(f"predict {len(images)}")
            if os.environ.get("IMHARD_TEST_DIE_AT") == str(self.calls):
                os._exit(7)
            return oracle.predict(images)
    return Flaky()
""")
    lines: list[str] = []
    opts = RunOptions(batch_size=3, on_output=lines.append)
    monkeypatch.setenv("IMHARD_TEST_DIE_AT", "2")
    with pytest.raises(SubmissionError, match="exited with status 7 .* rows 3–5.*resume"):
        score(sub, dataset=data, options=opts)
    monkeypatch.delenv("IMHARD_TEST_DIE_AT")
    run = score(sub, dataset=data, options=opts)
    calls = [line.split()[1] for line in lines if line.startswith("predict ")]
    assert run.resumed_rows == 3                     # the first batch came from the cache
    assert calls == ["3", "3", "3", "2"]             # died on 2nd; rerun did 3–5, 6–7
    assert run.result.metrics["correct"] == 4 and run.result.metrics["n"] == 8
    again = score(sub, dataset=data, options=opts)   # everything cached: no child at all
    assert again.resumed_rows == 8 and len(lines) == 4


def test_child_environment_carries_no_secrets(tmp_path, monkeypatch):
    secrets = {"HF_TOKEN": "hf_abc", "HUGGING_FACE_HUB_TOKEN": "hf_def", "AWS_SECRET_ACCESS_KEY":
               "x", "GITHUB_TOKEN": "y", "MY_SERVICE_API_KEY": "z", "DB_PASSWORD": "p",
               "OPENAI_API_KEY": "o", "SOME_SECRET_THING": "s", "AWS_PROFILE": "prod"}
    for k, v in secrets.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("IMHARD_TEST_VISIBLE", "yes")
    assert not set(secrets) & set(child_env())
    lines: list[str] = []
    data = make_dataset(tmp_path / "ds")
    sub = write_submission(tmp_path, """import os
print("ENV " + " ".join(sorted(os.environ)))
""" + PREDICT_FORM)
    score(sub, dataset=data, limit=2, options=RunOptions(on_output=lines.append))
    names = set(next(line for line in lines if line.startswith("ENV ")).split()[1:])
    assert "IMHARD_TEST_VISIBLE" in names and "PATH" in names
    assert not set(secrets) & names


def _loopback_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    threading.Thread(target=lambda: [srv.accept()[0].close() for _ in range(4)],
                     daemon=True).start()
    return srv


@pytest.mark.parametrize("no_network", [False, True], ids=["network", "no-network"])
def test_no_network_isolates_the_child(tmp_path, no_network):
    from imagenet_hard.sandbox import network_prefix

    try:
        network_prefix()
    except SubmissionError as exc:  # a kernel that refuses namespaces: the message says so
        assert "refused a new network namespace" in str(exc)
        pytest.skip(str(exc))
    srv = _loopback_server()
    port = srv.getsockname()[1]
    lines: list[str] = []
    sub = write_submission(tmp_path, f'''import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3).close()
    outcome = "connected"
except OSError as exc:
    outcome = "refused"
print("NET", outcome)
''' + PREDICT_FORM)
    run = score(sub, dataset=make_dataset(tmp_path / "ds"), limit=2,
                options=RunOptions(no_network=no_network, on_output=lines.append))
    srv.close()
    assert ("NET refused" if no_network else "NET connected") in lines
    assert run.result.metrics["n"] == 2


def test_an_unreachable_hub_fails_at_once_naming_the_host(tmp_path, monkeypatch):
    # `.invalid` never resolves (RFC 6761); without this check `datasets` retries five times.
    from imagenet_hard.errors import MissingFileError
    from imagenet_hard.score.sets import published_set

    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(MissingFileError, match="hub.invalid cannot be reached.*--dataset FOLDER"):
        published_set("someone/imagenet-hard")
