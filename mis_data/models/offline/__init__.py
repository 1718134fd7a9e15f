"""The offline backend: a deterministic, seeded stand-in for the models, needing no key or network.

MIS's recipe runs here with templates and written rules instead of language models (one module
per step): ``instructions`` (harmful drafts, objects replaced, ``detox``), ``judges``, ``labels``,
``concepts`` (concept tasks and the image critique), on ``templates`` and ``grammar``.
"""

from mis_data.models.offline.client import OFFLINE_MODEL, OfflineClient
from mis_data.models.offline.grammar import pick

__all__ = ["OFFLINE_MODEL", "OfflineClient", "pick"]
