"""Token samples addressed by index, so the shard ledger's pieces name exactly what is trained.

A sample is ``seq_len + 1`` consecutive tokens (inputs and shifted targets). Synthetic data is
reproducible from the seed and learnable (each sample follows an arithmetic progression modulo the
vocabulary with a little noise), so loss curves go down; a file source memory-maps a flat array of
token ids.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from elastrain_trainer.config import DataConfig, ModelConfig
from elastrain_trainer.ledger import Piece

#: Fraction of synthetic tokens replaced by random tokens (keeps the task from being trivial).
SYNTHETIC_NOISE = 0.1
#: Largest stride of the synthetic progressions.
SYNTHETIC_MAX_STRIDE = 4
#: Held-out samples for evaluation (the last ones of the data set; the config has no field for it):
#: one twentieth of the data, at most this many.
EVAL_MAX_SAMPLES = 64
EVAL_FRACTION_DENOMINATOR = 20


def split_samples(total: int, *, evaluate: bool) -> tuple[int, range]:
    """Samples the ledger trains on (the first ones) and the held-out evaluation samples (the rest)."""
    if not evaluate or total < 2:
        return total, range(total, total)
    held_out = min(EVAL_MAX_SAMPLES, max(1, total // EVAL_FRACTION_DENOMINATOR))
    return total - held_out, range(total - held_out, total)


class TokenSamples:
    """An indexable set of samples: ``batch(indices)`` returns (inputs, targets) of shape (n, seq_len)."""

    def __init__(self, tokens: np.ndarray, seq_len: int) -> None:
        self.tokens = tokens
        self.seq_len = seq_len
        self.num_samples = (len(tokens) - 1) // seq_len

    def batch(self, indices: Iterable[int]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [self.tokens[i * self.seq_len : i * self.seq_len + self.seq_len + 1] for i in indices]
        data = torch.from_numpy(np.stack(rows).astype(np.int64)) if rows else torch.empty(0, self.seq_len + 1)
        data = data.long()
        return data[:, :-1], data[:, 1:]

    def pieces_batch(self, pieces: Iterable[Piece]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.batch(i for p in pieces for i in range(p.start, p.stop))


def synthetic_tokens(count: int, vocab_size: int, seq_len: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = max(1, count // seq_len)
    start = rng.integers(0, vocab_size, size=(rows, 1))
    stride = rng.integers(1, SYNTHETIC_MAX_STRIDE + 1, size=(rows, 1))
    tokens = (start + stride * np.arange(seq_len)) % vocab_size
    noise: np.ndarray = np.asarray(rng.random(tokens.shape) < SYNTHETIC_NOISE)
    tokens[noise] = rng.integers(0, vocab_size, size=int(np.count_nonzero(noise)))
    flat = tokens.reshape(-1)
    return np.concatenate([flat, flat[:1]]).astype(np.int64)


def build_samples(data: DataConfig, model: ModelConfig, *, seed: int) -> TokenSamples:
    """The data set named by ``data`` (one epoch), cut into samples of ``model.seq_len`` tokens."""
    if data.source == "file":
        assert data.path is not None  # the config model requires it
        tokens: np.ndarray = np.memmap(data.path, dtype=np.dtype(data.token_dtype), mode="r")
    else:
        tokens = synthetic_tokens(data.synthetic_tokens, model.vocab_size, model.seq_len, seed)
    return TokenSamples(tokens, model.seq_len)
