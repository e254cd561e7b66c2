"""Detect truncated or corrupted checkpoint files: a manifest of every file's size and CRC-32.

DCP's ``.metadata`` describes where each tensor lives but not whether the data files are whole, so
a truncated or bit-flipped ``__R_0.distcp`` is only noticed when a group fails to load it. The
manifest (``manifest.json``) is written when a checkpoint is marked latest, after every rank's
files are complete; :func:`verify_manifest` reads every file once (CRC-32 runs at memory speed, so
this costs about one sequential read of the checkpoint) and says which file is wrong and how.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
#: Bytes read at a time while checksumming (bounded memory for multi-GB shards).
CHUNK_BYTES = 1 << 20


class CheckpointCorruptError(Exception):
    """A checkpoint's files do not match its manifest (or it cannot be read); the message says which file."""


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            crc = zlib.crc32(chunk, crc)
    return crc


def _checkpoint_files(directory: Path) -> list[Path]:
    """The files a checkpoint consists of: everything but the manifest and unfinished ``*.tmp`` writes."""
    return sorted(
        path
        for path in directory.iterdir()
        if path.is_file() and path.name != MANIFEST and not path.name.endswith(".tmp")
    )


def build_manifest(directory: Path) -> str:
    """The manifest text for the files now in ``directory`` (call once every rank's files are written)."""
    files = {path.name: {"size": path.stat().st_size, "crc32": _crc32(path)} for path in _checkpoint_files(directory)}
    return json.dumps({"version": MANIFEST_VERSION, "files": files}, indent=1, sort_keys=True)


def has_manifest(directory: Path) -> bool:
    return (directory / MANIFEST).is_file()


def verify_manifest(directory: Path) -> None:
    """Raise :class:`CheckpointCorruptError` naming the first file that is missing, short, long or altered."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        files: dict[str, dict[str, int]] = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointCorruptError(f"{MANIFEST} is unreadable ({type(error).__name__}: {error})") from error
    for name, expected in sorted(files.items()):
        path = directory / name
        if not path.is_file():
            raise CheckpointCorruptError(f"file {name} is missing (the manifest lists {expected['size']} bytes)")
        size = path.stat().st_size
        if size != expected["size"]:
            raise CheckpointCorruptError(
                f"file {name} has {size} bytes, the manifest says {expected['size']} (truncated or partly written)"
            )
        crc = _crc32(path)
        if crc != expected["crc32"]:
            raise CheckpointCorruptError(
                f"file {name} has CRC-32 {crc:08x}, the manifest says {expected['crc32']:08x} (corrupted bytes)"
            )
