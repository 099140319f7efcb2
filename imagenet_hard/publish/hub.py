"""``publish --push``: upload a published folder to a Hugging Face dataset repository.

The folder is checked first, then uploaded in one ``upload_folder`` call that also deletes remote
shards the new release does not have (a smaller release would otherwise leave stale shards that
``data/validation-*`` still matches). The token comes from the argument, ``HF_TOKEN`` or the
``hf auth login`` file; it is never printed, and it is scrubbed from every error message.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ImHardError, InvalidValueError
from .check import check

MISSING_TOKEN = ("no Hugging Face token: set HF_TOKEN or run `hf auth login` "
                 "(a token with write access to the dataset repository)")


class HubError(ImHardError, RuntimeError):
    """The Hub refused or failed an upload; the message never contains the token."""


def resolve_token(token: str | None = None) -> str:
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise HubError(MISSING_TOKEN)
    return token


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


def _hub_error(exc: Exception, token: str, repo_id: str) -> HubError:
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled):
        return HubError("HF_HUB_OFFLINE is set; unset it to push to the Hugging Face Hub")
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, HfHubHTTPError) and status in (401, 403):
        return HubError(
            f"the Hugging Face Hub rejected the token for {repo_id} (HTTP {status}): it is invalid, "
            "expired or lacks write access to that namespace; set HF_TOKEN to a write token or "
            "run `hf auth login`")
    first = _scrub(str(exc), token).strip().splitlines()
    return HubError(f"pushing to {repo_id} failed: {type(exc).__name__}: {first[0] if first else ''}")


def push(folder: str | os.PathLike, repo_id: str, *, private: bool = False,
         revision: str | None = None, token: str | None = None, endpoint: str | None = None,
         api=None, verify: bool = True) -> str:
    """Upload ``folder`` to the dataset repo ``repo_id`` (created if needed); return its URL.

    ``revision`` names a branch (created from the default branch if missing). ``api`` replaces
    the ``huggingface_hub.HfApi`` client (tests); ``endpoint`` defaults to ``$HF_ENDPOINT``.
    """
    folder = Path(folder).expanduser().resolve()
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise InvalidValueError(f"--push wants OWNER/NAME, got {repo_id!r}")
    if verify:
        report = check(folder)
        if not report.ok:
            raise InvalidValueError(
                f"{folder} fails `imhard publish --check` ({len(report.problems)} problems, first: "
                f"{report.problems[0]}); publish it again before pushing")
    token = resolve_token(token)
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None, token=token)
    try:
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True, token=token)
        if revision:
            api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True, token=token)
        api.upload_folder(
            repo_id=repo_id, folder_path=folder, repo_type="dataset", revision=revision, token=token,
            commit_message="Publish ImageNet-Hard with imagenet-hard", delete_patterns=["data/*"],
        )
    except Exception as exc:  # every failure is re-raised scrubbed, without the original chain
        raise _hub_error(exc, token, repo_id) from None
    return str(url) + (f"/tree/{revision}" if revision else "")
