"""Text corpus files: which files a glob names, what format each is, and the documents in them.

Documents are streamed one at a time (a parquet/arrow file one record batch at a time, jsonl and
txt one line at a time), so neither the text source nor ``elastrain data prepare`` holds a corpus
in memory. A plain-text file's documents are its paragraphs: runs of non-blank lines separated by
one or more blank lines (lines keep their newlines inside a document; the document is stripped).
"""

from __future__ import annotations

import glob
import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from elastrain_trainer.errors import SpecError

FileFormat = Literal["jsonl", "parquet", "txt"]

#: File name endings of each format, for format: auto.
EXTENSIONS: dict[str, FileFormat] = {
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".arrow": "parquet",
    ".txt": "txt",
    ".text": "txt",
    ".md": "txt",
}

#: Rows read at a time from a parquet file.
PARQUET_BATCH_ROWS = 1024

PATHS_FIELD = "spec.trainer.data.text.paths"
FORMAT_FIELD = "spec.trainer.data.text.format"
TEXT_FIELD = "spec.trainer.data.text.field"


def resolve_paths(patterns: Sequence[str], *, field: str = PATHS_FIELD) -> list[Path]:
    """The files the glob ``patterns`` match, sorted and without repeats; no match at all is a SpecError."""
    found: set[str] = set()
    for pattern in patterns:
        found.update(p for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    if not found:
        raise SpecError(
            field,
            list(patterns),
            "no file matches these patterns",
            "give glob patterns of existing files (e.g. /data/corpus/*.jsonl); in a job, paths inside the pod, "
            "on a mounted volume",
        )
    return [Path(p) for p in sorted(found)]


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def detect_format(path: Path, requested: str = "auto", *, field: str = FORMAT_FIELD) -> FileFormat:
    """The format of ``path``: ``requested`` unless it is auto, else from the file name's ending."""
    if requested != "auto":
        if requested not in ("jsonl", "parquet", "txt"):
            raise SpecError(field, requested, "unknown format", "use auto, jsonl, parquet or txt")
        return requested  # type: ignore[return-value]
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise SpecError(
            field,
            f"auto ({path.name})",
            f"cannot tell the format from the ending {path.suffix or '(none)'!r}",
            f"name files with one of {', '.join(sorted(EXTENSIONS))} or set the format explicitly",
        )
    return fmt


def read_documents(path: Path, fmt: FileFormat, *, text_field: str = "text") -> Iterator[str]:
    """The documents of one file, in file order."""
    if fmt == "jsonl":
        return _read_jsonl(path, text_field)
    if fmt == "parquet":
        return _read_parquet(path, text_field)
    return _read_txt(path)


def split_paragraphs(lines: Iterator[str]) -> Iterator[str]:
    """Blank-line separated paragraphs of ``lines`` (each stripped; empty ones skipped)."""
    current: list[str] = []
    for line in lines:
        if line.strip():
            current.append(line)
        elif current:
            yield "".join(current).strip()
            current = []
    if current:
        yield "".join(current).strip()


def _read_txt(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8", newline=None) as handle:
        yield from split_paragraphs(iter(handle))


def _read_jsonl(path: Path, text_field: str) -> Iterator[str]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise SpecError(
                    PATHS_FIELD, f"{path}:{number}", f"not a JSON line ({err.msg})", "fix or remove the line"
                ) from err
            value = record.get(text_field) if isinstance(record, dict) else None
            if not isinstance(value, str):
                raise SpecError(
                    TEXT_FIELD,
                    text_field,
                    f"line {number} of {path} has no string field {text_field!r} (keys: {_keys(record)})",
                    "set field to the key that holds each document's text",
                )
            yield value


def _read_parquet(path: Path, text_field: str) -> Iterator[str]:
    names, batches = (
        _arrow_batches(path, text_field) if path.suffix.lower() == ".arrow" else _parquet_batches(path, text_field)
    )
    if text_field not in names:
        raise SpecError(
            TEXT_FIELD,
            text_field,
            f"{path} has no column {text_field!r} (columns: {', '.join(names)})",
            "set field to the column that holds each document's text",
        )
    for batch in batches:
        for value in batch.column(batch.schema.get_field_index(text_field)).to_pylist():
            if value is not None:
                yield str(value)


def _parquet_batches(path: Path, text_field: str) -> tuple[list[str], Iterator[Any]]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    names = list(parquet.schema_arrow.names)
    columns = [text_field] if text_field in names else None
    return names, iter(parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns))


def _arrow_batches(path: Path, text_field: str) -> tuple[list[str], Iterator[Any]]:
    """Record batches of an Arrow IPC file (random-access format) or stream (as `datasets` writes it)."""
    import pyarrow as pa

    source = pa.memory_map(str(path))
    try:
        reader = pa.ipc.open_file(source)
        return list(reader.schema.names), (reader.get_batch(i) for i in range(reader.num_record_batches))
    except pa.ArrowInvalid:
        source.seek(0)
        stream = pa.ipc.open_stream(source)
        return list(stream.schema.names), iter(stream)


def _keys(record: object) -> str:
    return ", ".join(sorted(record)) if isinstance(record, dict) else type(record).__name__
