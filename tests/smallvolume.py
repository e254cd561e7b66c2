"""A small tmpfs of a test's own, and a way to keep it full: the storage-fault tests' volume.

The tests run as root (the project's test machines do), so they mount a real tmpfs: ENOSPC, short
writes and read-only remounts come from the kernel, as on a full persistent volume.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def mounted_tmpfs(where: Path, *, size: str = "4m") -> Iterator[Path]:
    """Mount a tmpfs of ``size`` at ``where`` (created) for the block; lazily unmounted after it."""
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def top_up(volume: Path, fillers: list[Path], *, leave: int) -> None:
    """Fill ``volume`` until ``leave`` bytes are free (one more filler file each time it has more).

    Called again and again while the volume is to be full: a save in flight when it filled prunes
    an older checkpoint when it completes, which would otherwise give the next save its room back.
    """
    stat = os.statvfs(volume)
    free = stat.f_bavail * stat.f_frsize
    if free > leave:
        fillers.append(volume / f"filler-{len(fillers)}")
        with contextlib.suppress(OSError):  # a save writing at the same time may take the room first
            fillers[-1].write_bytes(b"\0" * (free - leave))
