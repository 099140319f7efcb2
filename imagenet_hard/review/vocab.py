"""What a review decision may say: verdicts, reasons and tags, and their validation.

Values are kebab-case (``wrong-label``); what people type is normalised first, so ``Wrong label``,
``wrong_label`` and ``wrong-label`` are the same reason. Bad values raise
:class:`~imagenet_hard.errors.InvalidValueError` naming the valid choices.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import InvalidValueError

#: What a reviewer decides. ``pending`` is the absence of a decision (nothing decided, or undone).
VERDICTS = ("keep", "remove")
PENDING = "pending"
#: The event that cancels an earlier decision event; history itself is never rewritten.
UNDO = "undo"

#: Why an image is removed. The paper removed 295 of 13,925 candidates as ill-posed.
REASONS = ("ill-posed", "wrong-label", "duplicate", "other")

#: The paper's four kinds of hard image (section 4.8); any verdict may carry them.
TAGS = ("lack-of-information", "rare-case", "illusion", "many-objects")

#: Longest note kept, in characters (a note is a sentence, not a document).
MAX_NOTE = 2000
MAX_REVIEWER = 100


def normalize(value: str) -> str:
    return "-".join(value.strip().lower().replace("_", " ").replace("-", " ").split())


def check_verdict(verdict: str, allow_pending: bool = False) -> str:
    choices = VERDICTS + ((PENDING,) if allow_pending else ())
    value = normalize(verdict) if isinstance(verdict, str) else verdict
    if value not in choices:
        raise InvalidValueError(
            f"verdict must be one of {', '.join(choices)}, got {verdict!r}"
        )
    return value


def check_reason(reason: str | None, verdict: str) -> str | None:
    if reason is None or (isinstance(reason, str) and not reason.strip()):
        return None
    if not isinstance(reason, str) or normalize(reason) not in REASONS:
        raise InvalidValueError(f"reason must be one of {', '.join(REASONS)}, got {reason!r}")
    if verdict != "remove":
        raise InvalidValueError(
            f"a reason explains a removal; verdict {verdict!r} takes tags and a note only"
        )
    return normalize(reason)


def check_tags(tags: Iterable[str] | str | None) -> list[str]:
    """Tags as a sorted, de-duplicated list; a string is split on commas (the CLI's form)."""
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = [t for t in tags.split(",") if t.strip()]
    if not isinstance(tags, (list, tuple, set, frozenset)):
        raise InvalidValueError(f"tags must be a list of strings, got {tags!r}")
    out = set()
    for tag in tags:
        if not isinstance(tag, str) or normalize(tag) not in TAGS:
            raise InvalidValueError(f"tag must be one of {', '.join(TAGS)}, got {tag!r}")
        out.add(normalize(tag))
    return sorted(out)


def check_text(value, what: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidValueError(f"{what} must be a string, got {type(value).__name__}")
    value = value.strip()
    if len(value) > limit:
        raise InvalidValueError(f"{what} is {len(value)} characters; the limit is {limit}")
    return value or None
