"""Where checkpoints live and which one counts: ``step-NNNNNNNNN/`` directories and a ``latest`` marker.

A checkpoint directory holds the DCP files (written by every rank of the saving group),
``driver.json`` (the driver's part: step, shard ledger) and ``manifest.json`` (every file's size
and CRC-32, see :mod:`~elastrain_trainer.checkpoint.integrity`). The manifest and then the
``latest`` marker are replaced atomically (write, fsync, rename) only after the DCP save finished,
so a crash mid-save leaves the previous checkpoint current. Loading takes the newest readable
checkpoint and falls back to older ones when the newest is unreadable (missing, truncated or
corrupted files, unreadable DCP metadata); every checkpoint skipped is returned with its reason
and logged as a warning. A directory newer than ``latest`` is never loaded: it is a save that did
not finish. Only the last ``keep`` complete checkpoints (those with a manifest) are kept; a failed
save's directory is removed (:meth:`CheckpointStore.discard`), and any incomplete directory older
than a newly marked checkpoint is removed with the pruning.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.distributed.checkpoint.filesystem import FileSystemReader

from elastrain_trainer.checkpoint.integrity import (
    MANIFEST,
    CheckpointCorruptError,
    build_manifest,
    has_manifest,
    verify_manifest,
)

log = logging.getLogger(__name__)

LATEST = "latest"
DRIVER_RECORD = "driver.json"
#: Checkpoints kept when the config does not say (CheckpointSpec.keep lives in the TrainingJob).
DEFAULT_KEEP = 3


@dataclass(frozen=True)
class DriverRecord:
    """The driver's part of a checkpoint: the committed step, the shard ledger's state, and the
    compression strength the dynamic policy had reached (None without one; absent in older records)."""

    step: int
    ledger: dict[str, Any]
    batches_committed: int = 0
    compression_strength: float | int | bool | None = None


@dataclass(frozen=True)
class SkippedCheckpoint:
    """A checkpoint passed over while looking for one to resume from, and why."""

    step: int
    path: Path
    reason: str


@dataclass(frozen=True)
class CheckpointChoice:
    """The checkpoint to resume from (None: there is none) and the newer ones skipped, newest first."""

    record: DriverRecord | None
    skipped: tuple[SkippedCheckpoint, ...] = ()


class CheckpointStore:
    def __init__(self, root: str | Path, *, keep: int = DEFAULT_KEEP) -> None:
        self.root = Path(root)
        self.keep = keep
        self._warned: set[tuple[int, str]] = set()

    def step_dir(self, step: int) -> Path:
        return self.root / f"step-{step:09d}"

    def write_record(self, record: DriverRecord) -> None:
        path = self.step_dir(record.step)
        path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path / DRIVER_RECORD, json.dumps(record.__dict__))

    def mark_latest(self, step: int) -> None:
        """Make ``step`` the latest checkpoint (after its DCP save finished), then prune old ones.

        The manifest of the directory's files is written first, so a marked checkpoint always has one.
        """
        directory = self.step_dir(step)
        atomic_write_text(directory / MANIFEST, build_manifest(directory))
        atomic_write_text(self.root / LATEST, str(step))
        complete = [s for s in self.complete_steps() if s <= step]
        stale = complete[: -self.keep] + [s for s in self.steps() if s < step and s not in complete]
        for old in stale:
            shutil.rmtree(self.step_dir(old), ignore_errors=True)

    def complete_steps(self) -> list[int]:
        """Steps whose checkpoint was marked latest once (it has a manifest), oldest first; the latest too."""
        latest = self.latest()
        return [s for s in self.steps() if s == latest or has_manifest(self.step_dir(s))]

    def checkpoint_bytes(self, step: int) -> int:
        """Size of a complete checkpoint's files, from its manifest (0 without one)."""
        try:
            files: dict[str, dict[str, int]] = json.loads((self.step_dir(step) / MANIFEST).read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return 0
        return sum(int(entry["size"]) for entry in files.values())

    def delete(self, step: int) -> None:
        """Delete a complete checkpoint to make room (never the latest)."""
        if step == self.latest():
            raise ValueError(f"refusing to delete the latest checkpoint (step {step})")
        shutil.rmtree(self.step_dir(step), ignore_errors=True)

    def discard(self, step: int) -> bool:
        """Remove what a failed save of ``step`` left (its directory, a half-written ``latest``); whether
        nothing is left (False on a read-only volume). The latest checkpoint's directory is never removed:
        only unfinished ``*.tmp`` files go from it."""
        leftovers = [self.root / f".{LATEST}.tmp"]
        directory = self.step_dir(step)
        if step == self.latest():
            leftovers += list(directory.glob(".*.tmp"))
        else:
            shutil.rmtree(directory, ignore_errors=True)
        for path in leftovers:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        return not any(path.exists() for path in leftovers) and (step == self.latest() or not directory.exists())

    def latest(self) -> int | None:
        try:
            return int((self.root / LATEST).read_text().strip())
        except (OSError, ValueError):
            return None

    def steps(self) -> list[int]:
        """Steps with a checkpoint directory, oldest first."""
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.glob("step-*"):
            try:
                found.append(int(path.name.removeprefix("step-")))
            except ValueError:
                continue
        return sorted(found)

    def read_record(self, step: int) -> DriverRecord:
        """The driver's record of a whole, readable checkpoint; :class:`CheckpointCorruptError` says what is wrong.

        A checkpoint without a manifest (written before manifests existed) is checked by its DCP
        metadata only.
        """
        directory = self.step_dir(step)
        if not directory.is_dir():
            raise CheckpointCorruptError(f"directory {directory} does not exist")
        if has_manifest(directory):
            verify_manifest(directory)
        try:
            data = json.loads((directory / DRIVER_RECORD).read_text())
            record = DriverRecord(**data)
        except (OSError, ValueError, TypeError) as error:
            raise CheckpointCorruptError(f"{DRIVER_RECORD} is unreadable ({type(error).__name__}: {error})") from error
        try:
            FileSystemReader(str(directory)).read_metadata()
        except Exception as error:  # DCP raises whatever unpickling a damaged file raises
            raise CheckpointCorruptError(f"DCP metadata is unreadable ({type(error).__name__}: {error})") from error
        return record

    def find_newest(self) -> CheckpointChoice:
        """The latest checkpoint, or the newest older one that is readable, with every one skipped and why.

        Without a readable ``latest`` marker the newest checkpoint with a manifest is taken (a directory
        without one may be a save that never finished).

        Each skipped checkpoint is logged once as a warning naming its directory, the reason and the
        step the run falls back to.
        """
        latest = self.latest()
        if latest is None:
            # No readable marker (lost, or never written): only checkpoints known complete (a manifest) count.
            candidates = sorted((s for s in self.steps() if has_manifest(self.step_dir(s))), reverse=True)
        else:
            candidates = [latest, *sorted((s for s in self.steps() if s < latest), reverse=True)]
        if not candidates:
            return CheckpointChoice(record=None)
        skipped: list[SkippedCheckpoint] = []
        record: DriverRecord | None = None
        for step in candidates:
            try:
                record = self.read_record(step)
                break
            except Exception as error:  # any unreadable checkpoint falls back to the previous one
                reason = str(error) if isinstance(error, CheckpointCorruptError) else f"{type(error).__name__}: {error}"
                skipped.append(SkippedCheckpoint(step=step, path=self.step_dir(step), reason=reason))
        self._warn(skipped, record)
        return CheckpointChoice(record=record, skipped=tuple(skipped))

    def newest_readable(self) -> DriverRecord | None:
        """The latest checkpoint, or the newest older one if the latest is unreadable; None if none is."""
        return self.find_newest().record

    def _warn(self, skipped: list[SkippedCheckpoint], record: DriverRecord | None) -> None:
        fallback = (
            f"falling back to the checkpoint of step {record.step} ({self.step_dir(record.step)})"
            if record is not None
            else "no older readable checkpoint is left: training starts again from step 0"
        )
        for entry in skipped:
            if (entry.step, entry.reason) in self._warned:
                continue
            self._warned.add((entry.step, entry.reason))
            log.warning(
                "checkpoint %s of step %d is unreadable: %s; %s. The skipped directory is left in place for "
                "inspection and is overwritten when that step is saved again.",
                entry.path,
                entry.step,
                entry.reason,
                fallback,
            )


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so a reader sees the old file or the whole new one (fsync, then rename).

    The temporary file is ``.NAME.tmp`` beside it; a checkpoint's manifest never lists ``*.tmp``.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):  # a full or read-only volume: leave no half-written file behind
            tmp.unlink(missing_ok=True)
        raise
