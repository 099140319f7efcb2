"""Offline, a download fails fast and names both ways out (issue 21, "A newcomer's first hour"):
`imhard build --source imagenet-a` used to retry an unreachable host for 41 s, and
IMHARD_OFFLINE=1 did not skip it. Attempts are counted, not timed."""

from __future__ import annotations

import socket

import pytest
import requests
from click.testing import CliRunner

from imagenet_hard import download as dl
from imagenet_hard.cli import main
from imagenet_hard.errors import DownloadError

SHA = "0" * 64


@pytest.fixture
def attempts(monkeypatch):
    """Every GET a download makes, counted; no back-off between retries."""
    calls = []
    real_get = requests.Session.get

    def counting_get(self, url, *args, **kwargs):
        calls.append(url)
        return real_get(self, url, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "get", counting_get)
    monkeypatch.setitem(dl.download.__kwdefaults__, "backoff", 0.0)
    return calls


@pytest.fixture
def refused_url():
    """An address on the loopback interface where nothing listens: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/imagenet-a.tar"


def _names_both_ways_out(text: str) -> None:
    assert "--url" in text and "--path" in text, text


def test_a_refused_connection_is_tried_twice_not_six_times(tmp_path, attempts, refused_url):
    with pytest.raises(DownloadError) as info:
        dl.download(refused_url, tmp_path, sha256=SHA, retries=5)
    assert len(attempts) == 1 + dl.UNREACHABLE_RETRIES == 2
    assert "Connection refused" in str(info.value)
    _names_both_ways_out(str(info.value))
    assert list(tmp_path.iterdir()) == []


def test_a_name_that_does_not_resolve_is_tried_twice(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)   # the tests' default; no GET leaves
    calls = []

    def no_dns(self, url, *args, **kwargs):
        calls.append(url)
        raise requests.ConnectionError(
            "HTTPSConnectionPool(host='people.eecs.berkeley.edu', port=443): Max retries "
            "exceeded (Caused by NameResolutionError(\"<urllib3.connection.HTTPSConnection>: "
            "Failed to resolve 'people.eecs.berkeley.edu' ([Errno -3] Temporary failure in name "
            "resolution)\"))")

    monkeypatch.setattr(requests.Session, "get", no_dns)
    with pytest.raises(DownloadError) as info:
        dl.download("https://people.eecs.berkeley.edu/x.tar", tmp_path, sha256=SHA,
                    backoff=0.0)
    assert len(calls) == 2
    assert "name resolution" in str(info.value)
    _names_both_ways_out(str(info.value))


def test_a_dropped_connection_is_still_retried(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    calls = []

    def reset(self, url, *args, **kwargs):
        calls.append(url)
        raise requests.ConnectionError("('Connection aborted.', ConnectionResetError(104, "
                                       "'Connection reset by peer'))")

    monkeypatch.setattr(requests.Session, "get", reset)
    with pytest.raises(DownloadError, match="after 3 retries"):
        dl.download("https://example.org/x.tar", tmp_path, sha256=SHA, retries=3, backoff=0.0)
    assert len(calls) == 4


def test_build_against_a_refused_mirror_fails_fast_naming_both_ways_out(attempts, refused_url):
    res = CliRunner().invoke(main, ["build", "--source", "imagenet-a", "--url", refused_url])
    assert res.exit_code == 1, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, res.output
    _names_both_ways_out(errors[0])
    assert len(attempts) == 2


@pytest.mark.parametrize("var", ["IMHARD_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_build_makes_no_attempt_and_names_both_ways_out(monkeypatch, attempts, var):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv(var, "1")
    res = CliRunner().invoke(main, ["build", "--source", "imagenet-a"])
    assert res.exit_code == 1, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, res.output
    assert f"{var}=1" in errors[0]
    _names_both_ways_out(errors[0])
    assert attempts == []


def test_offline_still_fetches_from_this_machine(http_server, tmp_path, monkeypatch):
    """A mirror on the loopback interface is not the network: it is fetched offline too."""
    monkeypatch.setenv("IMHARD_OFFLINE", "1")
    url = http_server.add("x.bin", b"local mirror")
    path = dl.download(url, tmp_path, progress=False,
                       notify=lambda msg: None)
    assert path.read_bytes() == b"local mirror"
