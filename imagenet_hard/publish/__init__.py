"""Publishing: a reviewed mining run → parquet shards + a dataset card → a folder or the Hub.

``publish`` writes the complete folder (``folder``), ``check`` reloads it with ``datasets`` and
verifies it (``check``), ``push`` uploads it with ``huggingface_hub.HfApi`` (``hub``). Which rows
are published is ``selection``; the shards (licence rules applied by ``imagenet_hard.imaging``)
are ``shards``; the card
rendered from the top-level ``dataset_card.md`` template is ``card``.
"""

from .check import CheckReport, check
from .folder import FINGERPRINT_FILE, PublishResult, default_out, publish
from .hub import HubError, push
from .selection import Selection, select
from .shards import features, parse_shard_size

#: The name this package has exported the ``--max-shard-size`` parser under.
parse_size = parse_shard_size

__all__ = [
    "FINGERPRINT_FILE", "CheckReport", "HubError", "PublishResult", "Selection", "check",
    "default_out", "features", "parse_shard_size", "parse_size", "publish", "push", "select",
]
