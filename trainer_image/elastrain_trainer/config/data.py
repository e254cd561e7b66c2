"""Where training tokens come from and how they are cut into shards for the shard ledger."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from elastrain_trainer.config.base import ConfigModel, Rule

DataSource = Literal["synthetic", "file"]
TokenDtype = Literal["uint16", "uint32"]


class DataConfig(ConfigModel):
    """Training data: synthetic tokens or a memory-mapped token file, split into shards.

    The driver's shard ledger hands shards to replica groups and takes back the shards of a lost
    group, so every sample of an epoch is trained on exactly once.
    """

    source: DataSource = "synthetic"
    """synthetic: reproducible random tokens from the seed (for tests and benchmarks);
    file: a memory-mapped token file at path."""
    path: str | None = Field(None, min_length=1, max_length=4096)
    """Path of the token file inside the pod (a flat array of tokenDtype token ids); required when source is file."""
    token_dtype: TokenDtype = "uint16"
    """Integer type of the token ids in the file; uint16 holds vocabularies up to 65536."""
    synthetic_tokens: int = Field(1048576, ge=1024, le=1 << 40)
    """Number of tokens in the synthetic data set (one epoch)."""
    num_shards: int = Field(64, ge=1, le=1000000)
    """Number of shards the data is split into; at least the largest number of worker pods,
    more gives finer load balance."""
    shuffle: bool = True
    """Shuffle shard order each epoch (deterministically from the seed)."""

    rules = (
        Rule(
            cel="self.source != 'file' || has(self.path)",
            holds=lambda d: d.source != "file" or d.path is not None,
            field="path",
            message="path is required when source is file; set path to the token file or use source: synthetic",
        ),
        Rule(
            cel="self.source != 'synthetic' || !has(self.path)",
            holds=lambda d: d.source != "synthetic" or d.path is None,
            field="path",
            message="path is only read when source is file; remove path or set source: file",
        ),
    )
