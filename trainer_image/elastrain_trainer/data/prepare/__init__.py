"""``elastrain data prepare``: clean, deduplicate (exact and near), tokenize, pack and shard a corpus offline.

The output directory (token shards plus manifest.json) is what ``data.source: file`` trains from
with ``data.path`` set to the directory; see docs/data.md.
"""

from elastrain_trainer.data.prepare.clean import FilterOptions, decide_filter, exact_digest, normalize
from elastrain_trainer.data.prepare.near import NearDuplicateIndex, NearOptions, minhash_signature
from elastrain_trainer.data.prepare.pipeline import PrepareOptions, PrepareSummary, prepare

__all__ = [
    "FilterOptions",
    "NearDuplicateIndex",
    "NearOptions",
    "PrepareOptions",
    "PrepareSummary",
    "decide_filter",
    "exact_digest",
    "minhash_signature",
    "normalize",
    "prepare",
]
