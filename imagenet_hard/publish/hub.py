"""``publish --push``: upload a published folder to a Hugging Face dataset repository.

The folder is checked first, then uploaded in one ``upload_folder`` call that also deletes remote
shards the new release does not have (a smaller release would otherwise leave stale shards that
``data/validation-*`` still matches). A versioned folder's latest version becomes a tag
(``vX.Y.Z``) on the commit just made; a tag that exists already is never moved, and the default
branch never goes back to an older version than a tag it has. The token comes from the argument, ``HF_TOKEN`` or the
``hf auth login`` file; it is never printed, and it is scrubbed from every error message.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ImHardError, InvalidValueError
from . import releases
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
    latest = releases.read_ledger(folder).latest
    tag = releases.tag(latest.version) if latest else None
    try:
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True, token=token)
        if tag:
            _check_tags(api.list_repo_refs(repo_id, repo_type="dataset", token=token), tag,
                        latest.version, repo_id, revision)
        if revision:
            api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True, token=token)
        message = f"Publish ImageNet-Hard {tag}" if tag else "Publish ImageNet-Hard with imagenet-hard"
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=folder, repo_type="dataset", revision=revision, token=token,
            commit_message=message, delete_patterns=["data/*"],
        )
        if tag:
            api.create_tag(repo_id, tag=tag, revision=getattr(commit, "oid", None) or revision,
                           repo_type="dataset", token=token,
                           tag_message=f"ImageNet-Hard {latest.version}, fingerprint "
                                       f"{latest.fingerprint}")
    except InvalidValueError:
        raise
    except Exception as exc:  # every failure is re-raised scrubbed, without the original chain
        raise _hub_error(exc, token, repo_id) from None
    return str(url) + (f"/tree/{revision}" if revision else "")


def _check_tags(refs, tag: str, version: str, repo_id: str, revision: str | None) -> None:
    """Refuse a push that would move a tag, or put an older version on the default branch."""
    names = {t.name for t in refs.tags}
    if tag in names:
        raise InvalidValueError(
            f"{repo_id} already has the tag {tag}, and a published tag never moves; publish the "
            "changes as the next version (`imhard publish --run RUN --version X.Y.Z`) and push that")
    if revision:
        return
    newer = sorted((n for n in names if _is_newer(n, version)), key=releases.parse_version)
    if newer:
        raise InvalidValueError(
            f"{repo_id} has {newer[-1]}, newer than this folder's {version}; the default branch "
            "holds the latest version: push this one with --revision BRANCH")


def _is_newer(name: str, version: str) -> bool:
    try:
        return releases.parse_version(name) > releases.parse_version(version)
    except InvalidValueError:        # a tag that is no version of ours
        return False
