"""Token samples addressed by index, so the shard ledger's pieces name exactly what is trained.

A sample is ``seq_len + 1`` consecutive tokens (inputs and shifted targets). Synthetic data is
reproducible from the seed and learnable (each sample follows an arithmetic progression modulo the
vocabulary with a little noise), so loss curves go down; a file source memory-maps a flat array of
token ids or the shards of an ``elastrain data prepare`` output (data/prepared.py); a text source
tokenizes and packs corpus files in the pod (data/textsource.py). ``TokenSamples.tokens`` is the
packed token array, for the run-time data checks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import numpy as np
import torch

from elastrain_trainer.config import DataConfig, ModelConfig
from elastrain_trainer.data.packing import load_tokenizer
from elastrain_trainer.data.prepared import ShardedTokens, is_prepared, read_manifest
from elastrain_trainer.data.textsource import load_text_tokens
from elastrain_trainer.errors import SpecError
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


class TokenArray(Protocol):
    """A flat token array: a numpy array or memmap, or :class:`ShardedTokens` over several files."""

    def __len__(self) -> int: ...
    def __getitem__(self, key: slice, /) -> np.ndarray: ...


class TokenSamples:
    """An indexable set of samples: ``batch(indices)`` returns (inputs, targets) of shape (n, seq_len)."""

    def __init__(self, tokens: TokenArray, seq_len: int) -> None:
        self.tokens = tokens
        self.seq_len = seq_len
        self.num_samples = (len(tokens) - 1) // seq_len

    def token_parts(self) -> list[np.ndarray]:
        """The packed token array as numpy arrays in order (one, or one per data prepare shard), for data checks;
        memory-mapped where the source is a file, so reading them does not load the data set."""
        if isinstance(self.tokens, ShardedTokens):
            return list(self.tokens.shards)
        return [np.asarray(self.tokens)]

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
    tokens: TokenArray
    if data.source == "file":
        assert data.path is not None  # the config model requires it
        if is_prepared(data.path):
            prepared = read_manifest(data.path)
            _check_vocabulary(prepared.vocab_size, model, source=data.path)
            tokens = ShardedTokens.open(prepared)
        else:
            tokens = np.memmap(data.path, dtype=np.dtype(data.token_dtype), mode="r")
    elif data.source == "text":
        assert data.text is not None  # the config model requires it
        # Before tokenizing: a vocabulary mismatch should not cost a pass over the corpus.
        _check_vocabulary(load_tokenizer(data.text.tokenizer).vocab_size, model, source=data.text.tokenizer)
        tokens = load_text_tokens(data.text)
    else:
        tokens = synthetic_tokens(data.synthetic_tokens, model.vocab_size, model.seq_len, seed)
    return TokenSamples(tokens, model.seq_len)


def _check_vocabulary(vocab_size: int, model: ModelConfig, *, source: str) -> None:
    """A tokenizer's ids must all be rows of the built-in model's embedding (other sources size their own)."""
    if model.source == "builtin" and vocab_size > model.vocab_size:
        raise SpecError(
            "spec.trainer.model.vocabSize",
            model.vocab_size,
            f"smaller than the {vocab_size} tokens of the tokenizer behind {source}",
            f"set vocabSize to at least {vocab_size}",
        )
