"""Where checkpoints live and which one counts: ``step-NNNNNNNNN/`` directories and a ``latest`` marker.

A checkpoint directory holds the DCP files (written by every rank of the saving group) and
``driver.json`` (the driver's part: step, shard ledger). The ``latest`` marker is replaced
atomically (write, fsync, rename) only after the DCP save finished, so a crash mid-save leaves the
previous checkpoint current. Loading takes the newest readable checkpoint and falls back to older
ones when the newest is unreadable. Only the last ``keep`` checkpoints are kept.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.distributed.checkpoint.filesystem import FileSystemReader

LATEST = "latest"
DRIVER_RECORD = "driver.json"
#: Checkpoints kept when the config does not say (CheckpointSpec.keep lives in the TrainingJob).
DEFAULT_KEEP = 3


@dataclass(frozen=True)
class DriverRecord:
    """The driver's part of a checkpoint: the committed step and the shard ledger's state."""

    step: int
    ledger: dict[str, Any]
    batches_committed: int = 0


class CheckpointStore:
    def __init__(self, root: str | Path, *, keep: int = DEFAULT_KEEP) -> None:
        self.root = Path(root)
        self.keep = keep

    def step_dir(self, step: int) -> Path:
        return self.root / f"step-{step:09d}"

    def write_record(self, record: DriverRecord) -> None:
        path = self.step_dir(record.step)
        path.mkdir(parents=True, exist_ok=True)
        _atomic_write(path / DRIVER_RECORD, json.dumps(record.__dict__))

    def mark_latest(self, step: int) -> None:
        """Make ``step`` the latest checkpoint (after its DCP save finished), then prune old ones."""
        _atomic_write(self.root / LATEST, str(step))
        for old in self.steps()[: -self.keep]:
            shutil.rmtree(self.step_dir(old), ignore_errors=True)

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
        data = json.loads((self.step_dir(step) / DRIVER_RECORD).read_text())
        FileSystemReader(str(self.step_dir(step))).read_metadata()  # raises when the DCP files are unreadable
        return DriverRecord(**data)

    def newest_readable(self) -> DriverRecord | None:
        """The latest checkpoint, or the newest older one if the latest is unreadable; None if none is."""
        latest = self.latest()
        if latest is None:
            return None
        for step in [latest, *sorted((s for s in self.steps() if s < latest), reverse=True)]:
            try:
                return self.read_record(step)
            except Exception:  # any unreadable checkpoint falls back to the previous one
                continue
        return None


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
