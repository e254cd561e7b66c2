"""Token shards of data prepare's output: kept documents' tokens streamed into files of fixed size.

Every shard but the last holds exactly ``shard_tokens`` tokens (a document may continue in the next
shard: samples straddle shards anyway, see data/prepared.py). Shards are raw little-endian arrays of
the manifest's dtype, named ``shard-00000.bin`` upwards; each is hashed as it is written.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np


@dataclass(frozen=True)
class ShardFile:
    """One written shard: its file name (relative to the output directory), tokens and sha256."""

    file: str
    tokens: int
    sha256: str


class ShardWriter:
    """Appends token arrays, cutting a new shard file every ``shard_tokens`` tokens."""

    def __init__(self, out: Path, *, dtype: np.dtype[Any], shard_tokens: int) -> None:
        if shard_tokens < 1:
            raise ValueError(f"shard_tokens must be at least 1, got {shard_tokens}")
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.glob("shard-*.bin"):
            stale.unlink()  # a previous run's extra shards must not survive next to this run's manifest
        self.out = out
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.shard_tokens = shard_tokens
        self.done: list[ShardFile] = []
        self._handle: BinaryIO | None = None
        self._digest = hashlib.sha256()
        self._count = 0

    def write(self, tokens: np.ndarray) -> None:
        data = np.asarray(tokens, dtype=self.dtype)
        while len(data):
            if self._handle is None:
                self._open()
            take = min(len(data), self.shard_tokens - self._count)
            chunk = data[:take].tobytes()
            assert self._handle is not None
            self._handle.write(chunk)
            self._digest.update(chunk)
            self._count += take
            data = data[take:]
            if self._count == self.shard_tokens:
                self._finish()

    def close(self) -> list[ShardFile]:
        if self._handle is not None:
            self._finish()
        return self.done

    def _open(self) -> None:
        self._handle = (self.out / f"shard-{len(self.done):05d}.bin").open("wb")
        self._digest = hashlib.sha256()
        self._count = 0

    def _finish(self) -> None:
        assert self._handle is not None
        self._handle.close()
        self.done.append(ShardFile(Path(self._handle.name).name, self._count, self._digest.hexdigest()))
        self._handle = None
