"""ImageNet-C's 19 corruptions at full resolution (DESIGN §7).

PLACEHOLDER on branch ``corrupttorch``: helper "corrupt" writes this package's real ``__init__``
(``NAMES``, ``SEVERITY_PARAMS``, ``corrupt(..., backend=...)``); take that version at merge. The
torch backend (:mod:`.torch_backend`, with its private ``_torch_*`` modules) needs nothing from here.
"""

from ._torch_params import NAMES

__all__ = ["NAMES"]
