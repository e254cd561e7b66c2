"""data prepare's manifest.json: what went in, what was dropped and why, and the shards that came out.

Written with sorted keys and no timestamps or worker counts, so the same input and flags give a
byte-identical manifest. The trainer reads it with data/prepared.py (``MANIFEST_VERSION``).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from elastrain_trainer.data.packing import TextTokenizer
from elastrain_trainer.data.prepare.shards import ShardFile
from elastrain_trainer.data.prepared import MANIFEST_NAME, MANIFEST_VERSION
from elastrain_trainer.data.textfiles import file_sha256

if TYPE_CHECKING:
    from elastrain_trainer.data.prepare.pipeline import PrepareOptions, PrepareSummary


def build_manifest(
    *,
    options: PrepareOptions,
    tokenizer: TextTokenizer,
    dtype: np.dtype[Any],
    summary: PrepareSummary,
    inputs: list[dict[str, Any]],
    shards: list[ShardFile],
) -> dict[str, Any]:
    tokenizer_json = Path(options.tokenizer) / "tokenizer.json"
    return {
        "version": MANIFEST_VERSION,
        "dtype": np.dtype(dtype).name,
        "tokens": summary.tokens,
        "documents": {"in": summary.documents_in, "out": summary.documents_out},
        "dropped": {"exact_duplicates": summary.exact_duplicates, "near_duplicates": summary.near_duplicates},
        "filtered": dict(summary.filtered),
        "tokenizer": {
            "path": options.tokenizer,
            "sha256": file_sha256(tokenizer_json),
            "vocab_size": tokenizer.vocab_size,
            "eos_token": tokenizer.eos_token,
            "eos_id": tokenizer.eos_id,
        },
        "settings": {
            "format": options.format,
            "field": options.text_field,
            "normalization": "NFKC",
            "filters": asdict(options.filters),
            "dedup_exact": options.dedup_exact,
            "dedup_near": options.dedup_near,
            "near": asdict(options.near),
            "shard_tokens": options.shard_tokens,
        },
        "inputs": inputs,
        "shards": [asdict(s) for s in shards],
    }


def write_manifest(out: Path, manifest: dict[str, Any]) -> Path:
    """Write manifest.json last and atomically: its presence means the shards next to it are complete."""
    path = out / MANIFEST_NAME
    partial = out / f"{MANIFEST_NAME}.partial"
    partial.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    partial.replace(path)
    return path
