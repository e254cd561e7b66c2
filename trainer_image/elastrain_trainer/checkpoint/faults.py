"""Storage faults in words: why a checkpoint save failed, and whether there is room for the next one.

A save can fail for any I/O reason (a full volume, a quota, a read-only remount, a flaky NFS
server, permissions; credentials and network once object stores are supported). None of them may
stop training: the writer (:mod:`elastrain_trainer.group.checkpoints`) abandons the save on every
rank and reports a :class:`SaveFailure`, worded here so the driver's log line, the run summary and
the operator's ``CheckpointsFailing`` condition say the same thing ("no space left on device at
file:///ckpt"). DCP raises a ``CheckpointException`` (a ``BaseException``) that only lists ranks:
:func:`root_cause` digs out the first rank's own error.

The space check (:func:`decide_room`) is a pure function of the free bytes the store reports
(``statvfs`` for files), the bytes a save needs and the complete checkpoints on hand: the oldest
complete checkpoint may be deleted to make room only while at least :data:`MIN_COMPLETE_KEPT`
complete checkpoints remain after it (one to resume from, one to fall back to if it is unreadable).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: Complete checkpoints that making room never goes below.
MIN_COMPLETE_KEPT = 2
#: Bytes a save needs beyond its tensors (DCP metadata, driver record, manifest, directory entries).
SAVE_OVERHEAD_BYTES = 64 * 1024

#: Words for the errno values storage faults come with; others use ``os.strerror``.
_ERRNO_WORDS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EIO: "input/output error",
    errno.ENOENT: "no such file or directory",
    errno.ESTALE: "stale file handle (the NFS server lost it)",
    errno.ETIMEDOUT: "the storage timed out",
}


@dataclass(frozen=True)
class SaveFailure:
    """A checkpoint save that was abandoned on every rank of the saving group."""

    step: int
    """The step whose checkpoint could not be written."""
    cause: str
    """What went wrong and where, stable across retries (one Event per distinct cause):
    ``no space left on device at file:///ckpt``."""
    detail: str = ""
    """What changes from one attempt to the next: ``0 bytes free, 1.7 MB needed``."""
    removed: bool = True
    """Whether the save's partial files were removed (False: they could not be, e.g. read-only)."""

    def describe(self, *, last_good: int | None) -> str:
        """The driver's log line: cause, detail, and the checkpoint a restart would use."""
        detail = f", {self.detail}" if self.detail else ""
        good = f"step {last_good}" if last_good is not None else "none (a restart begins at step 0)"
        left = "" if self.removed else "; its partial files could not be removed"
        return (
            f"checkpoint of step {self.step} failed: {self.cause}{detail}; the last complete checkpoint is {good}"
            f"{left}; training goes on and the next scheduled save tries again"
        )


def root_cause(error: BaseException) -> BaseException:
    """The error that names the problem: the first failed rank's own error inside a DCP ``CheckpointException``,
    else the first ``OSError`` in the chain of causes, else ``error`` itself."""
    failures = getattr(error, "failures", None)
    if isinstance(failures, dict) and failures:
        first = failures[min(failures)]
        inner = first[0] if isinstance(first, tuple) and first else first
        if isinstance(inner, BaseException):
            return root_cause(inner)
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return error


def describe_fault(error: BaseException, *, location: str) -> str:
    """``<what> at <location>``: the errno in words for an ``OSError``, else ``Type: message``."""
    cause = root_cause(error)
    if isinstance(cause, OSError) and cause.errno is not None:
        words = _ERRNO_WORDS.get(cause.errno) or os.strerror(cause.errno).lower()
        return f"{words} at {location}"
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''} at {location}"


#: How torch's stream writer (``caffe2::serialize::PyTorchStreamWriter``) reports fewer bytes written than asked.
_SHORT_WRITE = "unexpected pos"


def describe_failure(error: BaseException, *, location: str, free: int | None) -> tuple[str, str]:
    """The cause and detail of a failed save, given the bytes left after it (None: unknown).

    Some writers do not pass the ``OSError`` on: torch's stream writer, which DCP uses for the
    non-tensor items, reports a short write as ``RuntimeError: [enforce fail at inline_container.cc]
    unexpected pos ...``. That error is a short write, which is what a full volume (or a used-up quota)
    does; so is any non-``OSError`` failure while the volume has no room left (less than
    :data:`SAVE_OVERHEAD_BYTES`). The cause then says so and the error itself goes to the detail. The
    short-write signature is matched as well as the room because the room is measured after the failure,
    when the partial files of the save (or a concurrent one) may already be gone.
    """
    cause = root_cause(error)
    left = f"{human_bytes(free)} free" if free is not None else ""
    if isinstance(cause, OSError) and cause.errno is not None:
        return describe_fault(error, location=location), left
    short_write = _SHORT_WRITE in str(cause)
    if short_write or (free is not None and free < SAVE_OVERHEAD_BYTES):
        worded = describe_fault(error, location=location).removesuffix(f" at {location}")
        failed = f"the write failed with {worded}"
        return f"{_ERRNO_WORDS[errno.ENOSPC]} at {location}", f"{left}; {failed}" if left else failed
    return describe_fault(error, location=location), left


def location_of(root: Path) -> str:
    """How a checkpoint directory is named in messages (a ``file://`` URI, as the spec spells it)."""
    return f"file://{root}"


def free_bytes(root: Path) -> int | None:
    """Bytes an unprivileged writer may still use under ``root`` (``statvfs``); None when it cannot tell."""
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent  # the checkpoint root may not exist yet: its file system is its parent's
    try:
        stat = os.statvfs(probe)
    except OSError:
        return None
    return int(stat.f_bavail) * int(stat.f_frsize)


def human_bytes(count: int) -> str:
    """``0 bytes``, ``512 kB``, ``1.7 MB``, ``3.2 GB`` (decimal units, as ``df -H`` prints them)."""
    if count < 1000:
        return f"{count} bytes"
    value = float(count)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if value >= 100 else f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Room:
    """Whether a save fits: the complete checkpoints to delete first, or why it cannot fit."""

    fits: bool
    delete: tuple[int, ...] = ()
    """Steps of the oldest complete checkpoints to delete before writing (oldest first)."""
    detail: str = ""
    """When it does not fit: ``200 kB free, 1.7 MB needed``."""


def decide_room(*, free: int | None, needed: int, complete: Sequence[tuple[int, int]]) -> Room:
    """Whether a save of ``needed`` bytes fits in ``free`` bytes, deleting old complete checkpoints if allowed.

    ``complete`` lists the complete checkpoints as ``(step, bytes)``, oldest first. The oldest may be
    deleted while at least :data:`MIN_COMPLETE_KEPT` complete ones remain after it. ``free`` None
    (the store cannot tell) always fits: the save itself then finds out.
    """
    if free is None or needed <= free:
        return Room(fits=True)
    available = free
    delete: list[int] = []
    remaining = list(complete)
    while needed > available and len(remaining) - 1 >= MIN_COMPLETE_KEPT:
        step, size = remaining.pop(0)
        delete.append(step)
        available += size
    if needed <= available:
        return Room(fits=True, delete=tuple(delete))
    return Room(fits=False, detail=f"{human_bytes(free)} free, {human_bytes(needed)} needed")
