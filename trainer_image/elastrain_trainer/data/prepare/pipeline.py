"""The data prepare pipeline: read -> (parallel) normalise, filter, hash, sign, tokenize -> dedup -> shards.

Documents are read in input order (files sorted) and cut into batches; worker processes clean,
sign and tokenize a batch each, and their results are taken back in submission order, with at most
``2 x workers`` batches in flight, so the corpus is never in memory at once and the output does not
depend on the number of workers. Deduplication is sequential in this process (the first of a set of
duplicates is kept), and kept documents' tokens stream into fixed-size shards. What grows with the
corpus: the set of exact digests (32 bytes per kept document) and the LSH index (near.py).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from elastrain_trainer.data.packing import TextTokenizer, load_tokenizer, token_dtype
from elastrain_trainer.data.prepare.clean import FILTER_REASONS, FilterOptions, decide_filter, exact_digest, normalize
from elastrain_trainer.data.prepare.manifest import build_manifest, write_manifest
from elastrain_trainer.data.prepare.near import NearDuplicateIndex, NearOptions, minhash_signature
from elastrain_trainer.data.prepare.shards import ShardWriter
from elastrain_trainer.data.prepared import MANIFEST_NAME
from elastrain_trainer.data.textfiles import detect_format, file_sha256, read_documents, resolve_paths

INPUTS_FIELD = "inputs"
TOKENIZER_FIELD = "--tokenizer"
FORMAT_FIELD = "--format"


@dataclass(frozen=True)
class PrepareOptions:
    """Everything that decides the output (``workers`` and ``batch_docs`` do not change a byte of it)."""

    inputs: tuple[str, ...]
    tokenizer: str
    out: str
    format: str = "auto"
    text_field: str = "text"
    filters: FilterOptions = field(default_factory=FilterOptions)
    near: NearOptions = field(default_factory=NearOptions)
    dedup_exact: bool = True
    dedup_near: bool = True
    shard_tokens: int = 1 << 24
    workers: int = 1
    batch_docs: int = 256


@dataclass
class PrepareSummary:
    """Counts of one run (also in the manifest) and the bytes read."""

    documents_in: int = 0
    documents_out: int = 0
    tokens: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    filtered: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FILTER_REASONS, 0))
    input_bytes: int = 0
    shards: int = 0


#: One document's result from a worker: (filter reason, digest, signature, tokens); the last three are
#: None when it was filtered out.
DocResult = tuple[str | None, bytes | None, np.ndarray | None, np.ndarray | None]

_worker_state: dict[str, Any] = {}


def _init_worker(options: PrepareOptions) -> None:
    """A pool process: one tokenizer thread each (the processes are the parallelism), then the shared state."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _load_state(options)


def _load_state(options: PrepareOptions) -> None:
    _worker_state["options"] = options
    _worker_state["tokenizer"] = load_tokenizer(options.tokenizer, field=TOKENIZER_FIELD)


def process_batch(documents: list[str]) -> list[DocResult]:
    """Clean, sign and tokenize a batch of documents (in a worker, after ``_init_worker``)."""
    options: PrepareOptions = _worker_state["options"]
    tokenizer: TextTokenizer = _worker_state["tokenizer"]
    dtype = token_dtype(tokenizer.vocab_size)
    results: list[DocResult] = []
    kept: list[str] = []
    for raw in documents:
        text = normalize(raw)
        reason = decide_filter(text, options.filters)
        if reason is not None:
            results.append((reason, None, None, None))
            continue
        signature = minhash_signature(text, options.near) if options.dedup_near else None
        results.append((None, exact_digest(text), signature, None))
        kept.append(text)
    encoded = iter(tokenizer.encode_documents(kept))
    return [(r, d, s, np.asarray(next(encoded), dtype=dtype) if r is None else None) for r, d, s, _ in results]


def prepare(options: PrepareOptions, *, progress: Callable[[int, int], None] | None = None) -> PrepareSummary:
    """Run the pipeline; ``progress(bytes, documents_in)`` is called per batch (bytes 0) and per file read."""
    files = resolve_paths(options.inputs, field=INPUTS_FIELD)
    formats = [detect_format(path, options.format, field=FORMAT_FIELD) for path in files]
    tokenizer = load_tokenizer(options.tokenizer, field=TOKENIZER_FIELD)
    dtype = token_dtype(tokenizer.vocab_size)
    out = Path(options.out)
    (out / MANIFEST_NAME).unlink(missing_ok=True)  # a failed run must not leave an old manifest over new shards
    writer = ShardWriter(out, dtype=dtype, shard_tokens=options.shard_tokens)
    summary = PrepareSummary()
    per_file: list[int] = [0] * len(files)
    kept_per_file: list[int] = [0] * len(files)
    #: The input file of each document of the batches in flight, in order (consume pops them).
    origins: deque[int] = deque()
    digests: set[bytes] = set()
    near = NearDuplicateIndex(options.near) if options.dedup_near else None

    def batches() -> Iterator[list[str]]:
        batch: list[str] = []
        for index, (path, fmt) in enumerate(zip(files, formats, strict=True)):
            for document in read_documents(path, fmt, text_field=options.text_field):
                per_file[index] += 1
                origins.append(index)
                summary.documents_in += 1
                batch.append(document)
                if len(batch) >= options.batch_docs:
                    yield batch
                    batch = []
                    if progress is not None:
                        progress(0, summary.documents_in)
            size = path.stat().st_size
            summary.input_bytes += size
            if progress is not None:
                progress(size, summary.documents_in)
        if batch:
            yield batch

    def consume(results: list[DocResult]) -> None:
        for reason, digest, signature, tokens in results:
            origin = origins.popleft()
            if reason is not None:
                summary.filtered[reason] += 1
                continue
            assert digest is not None and tokens is not None
            if options.dedup_exact:
                if digest in digests:
                    summary.exact_duplicates += 1
                    continue
                digests.add(digest)
            if near is not None and signature is not None and not near.admit(signature):
                summary.near_duplicates += 1
                continue
            summary.documents_out += 1
            kept_per_file[origin] += 1
            writer.write(tokens)

    for results in _map_ordered(options, batches()):
        consume(results)
    shards = writer.close()
    summary.tokens = sum(s.tokens for s in shards)
    summary.shards = len(shards)
    inputs = [
        {"path": str(path), "sha256": file_sha256(path), "bytes": path.stat().st_size, "documents": read, "kept": kept}
        for path, read, kept in zip(files, per_file, kept_per_file, strict=True)
    ]
    manifest = build_manifest(
        options=options, tokenizer=tokenizer, dtype=dtype, summary=summary, inputs=inputs, shards=shards
    )
    write_manifest(out, manifest)
    return summary


def _map_ordered(options: PrepareOptions, batches: Iterator[list[str]]) -> Iterator[list[DocResult]]:
    """``process_batch`` over ``batches`` in order: in this process, or in a bounded process pool."""
    if options.workers <= 1:
        _load_state(options)
        for batch in batches:
            yield process_batch(batch)
        return
    context = get_context("spawn")  # the parent may hold tokenizers' threads; a fork would inherit them
    with ProcessPoolExecutor(
        options.workers, mp_context=context, initializer=_init_worker, initargs=(options,)
    ) as pool:
        pending: deque[Future[list[DocResult]]] = deque()
        for batch in batches:
            pending.append(pool.submit(process_batch, batch))
            if len(pending) >= 2 * options.workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
