"""What the data checks cost before the first step, per GB of token file.

    make bench BENCH=data_check [ARGS='--sizes-mb 128 512 1024 --repeats 3']

For each size, a uint16 token file of that many MB is written to a temporary directory (ids below
the vocabulary, so every check runs to the end), then ``check_data`` (elastrain_trainer.data.checks)
runs on it as the driver runs it: size, a vectorised max over the memory map in chunks, sample
counts. The file is in the page cache (just written): the CPU cost. For the largest file, one row
reads it from disk (its pages dropped from the cache before each run) and one scans it with a
budget of a quarter of it (sampled: evenly spaced chunks), the mode a file past
``MAX_SCANNED_TOKENS`` gets.
  ms           median wall time of check_data
  ms/GB        milliseconds per GB of file
  GB/s         file bytes checked per second
  scanned %    tokens read by the vocabulary scan
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.data import checks
from report import print_table, summarise, write_json

VOCAB = 50257
GB = 1 << 30


def write_file(path: Path, megabytes: int) -> None:
    tokens = (1 << 20) // 2  # 1 MB of uint16
    block = (np.arange(tokens, dtype=np.uint32) * 7919 % VOCAB).astype(np.uint16)
    with path.open("wb") as out:
        for _ in range(megabytes):
            out.write(block.tobytes())


def evict(path: Path) -> None:
    """Drop the file's pages from the page cache (clean pages: no root needed), so the next read is from disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def measure(path: Path, repeats: int, budget: int | None, *, cold: bool = False) -> list[float]:
    cfg = TrainerConfig.model_validate(
        {
            "model": {"vocabSize": VOCAB, "seqLen": 1024},
            "data": {"source": "file", "path": str(path), "numShards": 64},
            "steps": 100,
            "globalBatchSize": 8,
        }
    )
    times = []
    for _ in range(repeats):
        if cold:
            evict(path)
        start = time.perf_counter()
        checks.check_data(cfg, budget=budget or checks.MAX_SCANNED_TOKENS)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[128, 512, 1024])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows, results = [], []
    with tempfile.TemporaryDirectory(prefix="elastrain-data-check-") as tmp:
        largest = max(args.sizes_mb)
        for megabytes in sorted(args.sizes_mb):
            path = Path(tmp) / f"tokens-{megabytes}.bin"
            write_file(path, megabytes)
            quarter = megabytes * (1 << 20) // 2 // 4
            cases = [("full", None, False)]
            if megabytes == largest:
                cases += [("full, from disk", None, True), ("sampled 25%", quarter, False)]
            for mode, budget, cold in cases:
                stats = summarise(measure(path, args.repeats, budget, cold=cold))
                size = path.stat().st_size
                total = size // 2
                scanned = sum(len(c) for c in checks.scan_chunks(total, budget=budget or checks.MAX_SCANNED_TOKENS))
                row = {
                    "megabytes": megabytes,
                    "mode": mode,
                    "seconds": stats["median"],
                    "seconds_per_gb": stats["median"] / (size / GB),
                    "gb_per_second": (size / GB) / stats["median"],
                    "scanned_percent": 100.0 * scanned / total,
                    "samples": stats,
                }
                results.append(row)
                rows.append(
                    [
                        megabytes,
                        mode,
                        f"{1000 * stats['median']:.1f}",
                        f"{1000 * stats['median'] / (size / GB):.1f}",
                        f"{(size / GB) / stats['median']:.1f}",
                        f"{100.0 * scanned / total:.1f}",
                    ]
                )
            path.unlink()
    print_table(
        "data checks before the first step (uint16 token file; in the page cache unless 'from disk')",
        ["MB", "mode", "ms", "ms/GB", "GB/s", "scanned %"],
        rows,
    )
    print(f"wrote {write_json('data_check', {'chunk_tokens': checks.CHUNK_TOKENS, 'rows': results})}")


if __name__ == "__main__":
    main()
