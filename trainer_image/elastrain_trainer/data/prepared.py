"""Reading ``elastrain data prepare`` output: its manifest and its token shards as one array.

The manifest (``manifest.json`` in the output directory) lists the shard files in order with their
token counts; :class:`ShardedTokens` memory-maps each shard and serves slices of their
concatenation, so a sample that straddles two shards is read from both and nothing is copied whole
into memory. Sample ``i`` is the same as for one flat file of all shards, on every rank.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from elastrain_trainer.errors import SpecError

MANIFEST_NAME = "manifest.json"
#: Version of the manifest format written by data prepare.
MANIFEST_VERSION = 1
PATH_FIELD = "spec.trainer.data.path"


@dataclass(frozen=True)
class PreparedData:
    """What the trainer needs from a manifest: where the shards are, their sizes, dtype and vocabulary."""

    root: Path
    shard_files: tuple[str, ...]
    shard_tokens: tuple[int, ...]
    dtype: str
    vocab_size: int
    eos_id: int


def is_prepared(path: str | Path) -> bool:
    """A data prepare output: its directory or its manifest.json."""
    p = Path(path)
    return (p.is_dir() and (p / MANIFEST_NAME).is_file()) or (p.name == MANIFEST_NAME and p.is_file())


def read_manifest(path: str | Path, *, field: str = PATH_FIELD) -> PreparedData:
    """The manifest at ``path`` (the output directory or its manifest.json)."""
    p = Path(path)
    manifest = p / MANIFEST_NAME if p.is_dir() else p
    try:
        raw: dict[str, Any] = json.loads(manifest.read_text())
        version = raw["version"]
        shards = raw["shards"]
        data = PreparedData(
            root=manifest.parent,
            shard_files=tuple(str(s["file"]) for s in shards),
            shard_tokens=tuple(int(s["tokens"]) for s in shards),
            dtype=str(raw["dtype"]),
            vocab_size=int(raw["tokenizer"]["vocab_size"]),
            eos_id=int(raw["tokenizer"]["eos_id"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SpecError(
            field, str(path), f"not a readable data prepare manifest ({err!r})", "run elastrain data prepare again"
        ) from err
    if version != MANIFEST_VERSION:
        raise SpecError(
            field, str(path), f"manifest version {version}, this trainer reads {MANIFEST_VERSION}", "prepare it again"
        )
    missing = [f for f in data.shard_files if not (data.root / f).is_file()]
    if missing:
        raise SpecError(field, str(path), f"shard files missing: {', '.join(missing[:3])}", "copy the whole directory")
    return data


class ShardedTokens:
    """Token shards read as one flat array: ``len()`` and slices ``[a:b]`` (step 1), nothing loaded whole."""

    def __init__(self, shards: Sequence[np.ndarray]) -> None:
        self.shards = [s for s in shards if len(s)]
        self.dtype = self.shards[0].dtype if self.shards else np.dtype(np.uint16)
        self.offsets = np.cumsum([0, *(len(s) for s in self.shards)])

    @classmethod
    def open(cls, data: PreparedData) -> ShardedTokens:
        return cls([np.memmap(data.root / f, dtype=np.dtype(data.dtype), mode="r") for f in data.shard_files])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, key: slice) -> np.ndarray:
        start, stop, step = key.indices(len(self))
        if step != 1:
            raise ValueError("ShardedTokens supports contiguous slices only")
        if stop <= start:
            return np.zeros(0, dtype=self.dtype)
        first = int(np.searchsorted(self.offsets, start, side="right")) - 1
        parts = []
        index = first
        while start < stop:
            base = int(self.offsets[index])
            end = min(stop, int(self.offsets[index + 1]))
            parts.append(np.asarray(self.shards[index][start - base : end - base]))
            start, index = end, index + 1
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
