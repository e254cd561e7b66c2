"""Checks on training data before the first step: a bad file fails the job at once, saying why.

Bad data otherwise shows only at run time, and badly: an out-of-vocabulary token id makes every
group's first step raise (a crash loop), a truncated file trains its few samples hundreds of times,
a missing file surfaces as a bare ``FileNotFoundError``. The driver runs these checks once, before
it starts any group; each failure is a :class:`~elastrain_trainer.errors.SpecError` naming the
field, the value found and the fix, and each warning becomes a log line and an Event.

What is checked, for any source that yields a flat array of token ids (a token file, the output of
``data prepare``, a tokenized text source):

- the file exists and is readable (:func:`open_token_file`);
- its size is a whole, non-zero number of ``tokenDtype`` items (:func:`check_file_size`);
- every token id is below the model's vocabulary (:func:`model_vocab_size`: ``model.vocabSize``, or a Hugging
  Face model's own ``vocab_size``; :func:`find_out_of_vocab`): a vectorised pass over
  the memory map in chunks of :data:`CHUNK_TOKENS`; past :data:`MAX_SCANNED_TOKENS` tokens the
  chunks are sampled evenly across the file and the report says how many tokens were read;
- there is at least one global batch of samples, and no shard is empty (:func:`check_samples`);
- warning: fewer samples than ``steps x globalBatchSize``, so the data repeats (:func:`check_samples`).

The checks are pure functions of the token array and the file's size, tested without a cluster.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from elastrain_trainer.config import ModelConfig, TrainerConfig
from elastrain_trainer.data.prepared import is_prepared
from elastrain_trainer.data.tokens import TokenSamples, build_samples, split_samples
from elastrain_trainer.errors import SpecError

#: Tokens read per vectorised step of the vocabulary scan (8 MiB of uint16: fits in cache-friendly pieces).
CHUNK_TOKENS = 1 << 22
#: Tokens scanned at most; a larger file is sampled: evenly spaced chunks adding up to this many.
MAX_SCANNED_TOKENS = 1 << 31

PATH_FIELD = "spec.trainer.data.path"
DTYPE_FIELD = "spec.trainer.data.tokenDtype"
VOCAB_FIELD = "spec.trainer.model.vocabSize"
BATCH_FIELD = "spec.trainer.globalBatchSize"
SHARDS_FIELD = "spec.trainer.data.numShards"
SEQ_FIELD = "spec.trainer.model.seqLen"
MOUNT_FIX = "mount it into the pods through spec.pod volumes and volumeMounts, or fix spec.trainer.data.path"


@dataclass(frozen=True)
class OutOfVocab:
    """The largest token id found that is not below the vocabulary, and where it first occurs."""

    token_id: int
    offset: int
    """Index of the token in the file (in tokens, not bytes)."""


@dataclass(frozen=True)
class VocabScan:
    """What the vocabulary scan read and found."""

    scanned: int
    """Tokens read (all of them unless the file was sampled)."""
    total: int
    out_of_vocab: OutOfVocab | None


@dataclass(frozen=True)
class DataReport:
    """A file that passed: what was checked, and warnings (each one a log line and an Event)."""

    tokens: int
    scanned: int
    samples: int
    warnings: tuple[str, ...] = ()

    def describe(self) -> str:
        sampled = "" if self.scanned >= self.tokens else f" (sampled: {self.scanned} of {self.tokens} tokens read)"
        return f"data checked: {self.tokens} tokens, {self.samples} training samples, token ids in vocabulary{sampled}"


def open_token_file(path: str) -> int:
    """The file's size in bytes; a SpecError if it does not exist, is not a file or cannot be read."""
    try:
        size = os.stat(path).st_size
        if not os.path.isfile(path):
            raise SpecError(PATH_FIELD, path, "is not a regular file", "point it at the token file itself")
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        raise SpecError(PATH_FIELD, path, "no such file in the pod", MOUNT_FIX) from None
    except PermissionError:
        fix = "make it readable by the pod's user (spec.pod securityContext)"
        raise SpecError(PATH_FIELD, path, "the trainer may not read it", fix) from None
    return size


def check_file_size(size: int, dtype: np.dtype[np.generic], *, path: str) -> int:
    """The number of tokens in a file of ``size`` bytes; a SpecError if it is empty or not whole items."""
    if size == 0:
        raise SpecError(PATH_FIELD, path, "the file is empty", "check that the file was written completely")
    if size % dtype.itemsize:
        raise SpecError(
            PATH_FIELD,
            path,
            f"its size {size} bytes is not a whole number of {dtype.name} tokens ({dtype.itemsize} bytes each)",
            f"check {DTYPE_FIELD} ({dtype.name}) and that the file was not truncated",
        )
    return size // dtype.itemsize


def scan_chunks(total: int, *, chunk: int = CHUNK_TOKENS, budget: int = MAX_SCANNED_TOKENS) -> list[range]:
    """The token ranges the vocabulary scan reads: all of them, or evenly spaced chunks within ``budget``."""
    starts = range(0, total, chunk)
    if total <= budget:
        return [range(s, min(s + chunk, total)) for s in starts]
    wanted = max(1, budget // chunk)
    picked = sorted({starts[(i * len(starts)) // wanted] for i in range(wanted)} | {starts[-1]})
    return [range(s, min(s + chunk, total)) for s in picked]


def find_out_of_vocab(
    tokens: np.ndarray, vocab_size: int, *, chunk: int = CHUNK_TOKENS, budget: int = MAX_SCANNED_TOKENS
) -> VocabScan:
    """The largest token id >= ``vocab_size`` (first offset it occurs at), scanning ``tokens`` in chunks."""
    best: OutOfVocab | None = None
    scanned = 0
    for part in scan_chunks(len(tokens), chunk=chunk, budget=budget):
        values = tokens[part.start : part.stop]
        scanned += len(values)
        top = int(values.max())
        if top >= vocab_size and (best is None or top > best.token_id):
            best = OutOfVocab(token_id=top, offset=part.start + int(np.argmax(values)))
    return VocabScan(scanned=scanned, total=len(tokens), out_of_vocab=best)


def out_of_vocab_error(
    found: OutOfVocab, *, vocab_size: int, path: str, dtype: str, field: str = PATH_FIELD
) -> SpecError:
    return SpecError(
        field,
        path,
        f"token id {found.token_id} at offset {found.offset} is >= {VOCAB_FIELD} {vocab_size}",
        f"set {VOCAB_FIELD} to at least {found.token_id + 1}, or check {DTYPE_FIELD} ({dtype}) and the tokenizer",
    )


def check_samples(
    *,
    samples: int,
    global_batch_size: int,
    num_shards: int,
    steps: int,
    seq_len: int,
    path: str,
    field: str = PATH_FIELD,
) -> tuple[str, ...]:
    """SpecError if the samples cannot fill one global batch or every shard; warnings otherwise."""
    if samples < global_batch_size:
        raise SpecError(
            field,
            path,
            f"holds {samples} samples of {SEQ_FIELD} {seq_len} tokens, fewer than one global batch "
            f"({BATCH_FIELD} {global_batch_size})",
            f"check that the file is complete, or lower {BATCH_FIELD} or {SEQ_FIELD}",
        )
    if num_shards > samples:
        raise SpecError(
            SHARDS_FIELD,
            num_shards,
            f"more shards than the {samples} samples in {path}: some shards would be empty",
            f"set {SHARDS_FIELD} to at most {samples}",
        )
    needed = steps * global_batch_size
    if samples < needed:
        repeats = math.ceil(needed / samples)
        return (
            f"{field} holds {samples} samples, fewer than {needed} ({steps} steps x {global_batch_size}): "
            f"the data repeats {repeats} times (epochs); check the file is complete, or lower spec.trainer.steps",
        )
    return ()


def check_tokens(
    tokens: np.ndarray,
    *,
    vocab_size: int,
    seq_len: int,
    samples: int,
    global_batch_size: int,
    num_shards: int,
    steps: int,
    path: str,
    chunk: int = CHUNK_TOKENS,
    budget: int = MAX_SCANNED_TOKENS,
) -> DataReport:
    """Every check on a token array once its size is known good; a SpecError on the first failure.

    ``samples`` is what the shard ledger trains on (held-out evaluation samples excluded).
    """
    scan = find_out_of_vocab(tokens, vocab_size, chunk=chunk, budget=budget)
    if scan.out_of_vocab is not None:
        raise out_of_vocab_error(scan.out_of_vocab, vocab_size=vocab_size, path=path, dtype=tokens.dtype.name)
    warnings = check_samples(
        samples=samples,
        global_batch_size=global_batch_size,
        num_shards=num_shards,
        steps=steps,
        seq_len=seq_len,
        path=path,
    )
    return DataReport(tokens=len(tokens), scanned=scan.scanned, samples=samples, warnings=warnings)


def model_vocab_size(model: ModelConfig) -> int:
    """Rows of the model's token embedding, read without building it: the builtin GPT's vocabSize, a Hugging
    Face model's ``vocab_size`` (inline config, or config.json in its path), else vocabSize."""
    hf = model.huggingface
    if model.source == "huggingface" and hf is not None:
        config: object = hf.config
        if config is None and hf.path is not None:
            try:
                config = json.loads((Path(hf.path) / "config.json").read_text())
            except (OSError, ValueError):
                config = None  # building the model says what is wrong with the directory
        found = config.get("vocab_size") if isinstance(config, dict) else None
        if isinstance(found, int) and found > 0:
            return found
    return model.vocab_size


def check_data(cfg: TrainerConfig, *, budget: int = MAX_SCANNED_TOKENS) -> DataReport | None:
    """Check the data ``cfg`` names before training (None for synthetic data, correct by construction).

    Token ids are checked against the model's embedding (:func:`model_vocab_size`). A text source is
    tokenized here (and cached for the ranks, see :mod:`elastrain_trainer.data.textsource`), the
    output of ``data prepare`` is checked shard by shard. ``budget``: tokens the vocabulary scan reads
    at most (past it, evenly spaced chunks are sampled).
    """
    data = cfg.data
    if data.source == "synthetic":
        return None
    if data.source == "text" or (data.path is not None and is_prepared(data.path)):
        return _check_built(cfg, budget=budget)
    assert data.path is not None  # the config model requires it for source file
    dtype = np.dtype(data.token_dtype)
    count = check_file_size(open_token_file(data.path), dtype, path=data.path)
    tokens: np.ndarray = np.memmap(data.path, dtype=dtype, mode="r", shape=(count,))
    total = TokenSamples(tokens, cfg.model.seq_len).num_samples
    samples, _ = split_samples(total, evaluate=cfg.eval_interval_steps > 0)
    return check_tokens(
        tokens,
        vocab_size=model_vocab_size(cfg.model),
        seq_len=cfg.model.seq_len,
        samples=samples,
        global_batch_size=cfg.global_batch_size,
        num_shards=data.num_shards,
        steps=cfg.steps,
        path=data.path,
        budget=budget,
    )


def _check_built(cfg: TrainerConfig, *, budget: int) -> DataReport:
    """The checks on a text source or ``data prepare`` output, through the same samples the ranks build."""
    data = cfg.data
    if data.source == "text":
        assert data.text is not None  # the config model requires it
        where, field = ", ".join(data.text.paths), "spec.trainer.data.text.paths"
        vocab_field = "spec.trainer.data.text.tokenizer"
    else:
        assert data.path is not None
        where, field, vocab_field = data.path, PATH_FIELD, PATH_FIELD
    built = build_samples(data, cfg.model, seed=cfg.seed)  # SpecErrors name the field
    parts = built.token_parts()
    vocab_size = model_vocab_size(cfg.model)
    scanned = offset = 0
    for part in parts:
        scan = find_out_of_vocab(part, vocab_size, budget=max(1, budget // len(parts)))
        scanned += scan.scanned
        if scan.out_of_vocab is not None:
            found = OutOfVocab(token_id=scan.out_of_vocab.token_id, offset=offset + scan.out_of_vocab.offset)
            raise out_of_vocab_error(found, vocab_size=vocab_size, path=where, dtype=part.dtype.name, field=vocab_field)
        offset += len(part)
    samples, _ = split_samples(built.num_samples, evaluate=cfg.eval_interval_steps > 0)
    warnings = check_samples(
        samples=samples,
        global_batch_size=cfg.global_batch_size,
        num_shards=data.num_shards,
        steps=cfg.steps,
        seq_len=cfg.model.seq_len,
        path=where,
        field=field,
    )
    return DataReport(tokens=offset, scanned=scanned, samples=samples, warnings=warnings)
