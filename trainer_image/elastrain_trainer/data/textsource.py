"""The text source: corpus files read, tokenized and packed inside the pod, cached by content hash.

Every rank (and the driver) needs the same token array. The first process to build it writes it to
a cache file named by the sha256 of everything that decides it (each input file's bytes, the
tokenizer.json, the format and the field); the others, and later runs, memory-map that file. Two
processes that miss the cache at once both build it and the second rename replaces the first with
identical bytes. Hashing reads the corpus once per process; tokenizing is the costly part and is
done once per cache. Corpora too large for that (or that need cleaning and deduplication) go through
``elastrain data prepare`` and train with source: file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from elastrain_trainer.config.data import TextDataConfig
from elastrain_trainer.data.packing import load_tokenizer, pack, token_dtype
from elastrain_trainer.data.textfiles import detect_format, file_sha256, read_documents, resolve_paths

#: Where built token arrays are kept (a volume shared by the pod's ranks); overridden by this variable.
CACHE_ENV = "ELASTRAIN_DATA_CACHE"
#: Documents encoded per tokenizer call.
ENCODE_BATCH = 256
#: Bumped when the packing rules change, so old caches are not reused.
CACHE_VERSION = "text-tokens-1"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "elastrain" / "text-tokens")


def content_key(text: TextDataConfig, files: list[Path]) -> str:
    """sha256 over what decides the tokens: the files' bytes (in order), the tokenizer, format and field."""
    digest = hashlib.sha256(CACHE_VERSION.encode())
    for part in (text.format, text.field):
        digest.update(part.encode() + b"\0")
    for path in [Path(text.tokenizer) / "tokenizer.json", Path(text.tokenizer) / "tokenizer_config.json", *files]:
        digest.update(path.name.encode() + b"\0" + file_sha256(path).encode() if path.exists() else b"-")
    return digest.hexdigest()


def tokenize_text(text: TextDataConfig) -> np.ndarray:
    """The corpus's documents, tokenized and packed, each followed by the end-of-document token."""
    tokenizer = load_tokenizer(text.tokenizer)
    dtype = token_dtype(tokenizer.vocab_size)
    parts: list[np.ndarray] = []
    batch: list[str] = []
    for path in resolve_paths(text.paths):
        for document in read_documents(path, detect_format(path, text.format), text_field=text.field):
            batch.append(document)
            if len(batch) >= ENCODE_BATCH:
                parts.append(pack(tokenizer.encode_documents(batch), dtype))
                batch = []
    if batch:
        parts.append(pack(tokenizer.encode_documents(batch), dtype))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def load_text_tokens(text: TextDataConfig, *, cache: Path | None = None) -> np.ndarray:
    """The text source's packed token array: memory-mapped from the cache, built and cached on a miss."""
    files = resolve_paths(text.paths)
    root = cache or cache_dir()
    target = root / f"{content_key(text, files)}.npy"
    if target.is_file():
        return np.asarray(np.load(target, mmap_mode="r"))
    tokens = tokenize_text(text)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, suffix=".tmp", delete=False) as handle:
            np.save(handle, tokens)
        os.replace(handle.name, target)
    except OSError:
        return tokens  # a read-only cache costs a re-tokenization per process, never a failure
    return np.asarray(np.load(target, mmap_mode="r"))
