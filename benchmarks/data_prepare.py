"""What ``elastrain data prepare`` costs against a plain ``datasets.map`` tokenization of the same files.

    make bench BENCH=data_prepare [ARGS='--documents 20000 --repeats 3']

A jsonl corpus is generated from the shipped test corpus (tests/data/corpus/elastic.txt): each
document is a seeded random run of its sentences, and 1 in 20 is an exact or near copy of an earlier
one. The tokenizer is the tests' byte-level BPE (trained here on the same corpus, 384 tokens).
Per row, the median wall time over --repeats runs, from files on disk to tokens on disk:
  datasets.map     load_dataset("json") then a batched map of a fast tokenizer (num_proc = workers),
                   written with save_to_disk; no cleaning, no dedup
  prepare          elastrain data prepare (NFKC, filters, exact and MinHash LSH near dedup, shards)
  prepare no-dedup the same without exact and near dedup (what dedup costs)
MB/s is input bytes over that time. ``benchmarks/real_models.py`` runs the same comparison (smaller,
one repeat) as its ``data_prepare`` section, next to the model measurements the issue asked for.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.textdata import corpus_documents, train_tokenizer  # noqa: E402

from elastrain_trainer.cli import main as elastrain  # noqa: E402
from report import print_table, summarise, write_json  # noqa: E402


def make_corpus(path: Path, documents: int, seed: int) -> int:
    """A jsonl corpus of ``documents`` documents with 5% planted duplicates; returns its size in bytes."""
    rng = random.Random(seed)
    sentences = [s for d in corpus_documents() for s in re.split(r"(?<=[.!?])\s+", d.replace("\n", " ")) if s]
    written: list[str] = []
    with path.open("w") as handle:
        for _ in range(documents):
            if written and rng.random() < 0.05:
                text = rng.choice(written)
                if rng.random() < 0.5:
                    text = text.replace(" the ", " a ", 1) + " Indeed."
            else:
                text = " ".join(rng.choice(sentences) for _ in range(rng.randint(3, 12)))
                written.append(text)
            handle.write(json.dumps({"text": text}) + "\n")
    return path.stat().st_size


def run_datasets_map(corpus: Path, tokenizer: Path, out: Path, workers: int) -> dict[str, Any]:
    import datasets
    from transformers import AutoTokenizer

    datasets.disable_progress_bars()
    tok = AutoTokenizer.from_pretrained(str(tokenizer))
    ds = datasets.load_dataset("json", data_files=str(corpus), split="train", cache_dir=str(out / "cache"))
    mapped = ds.map(
        lambda batch: {"input_ids": tok(batch["text"])["input_ids"]},
        batched=True,
        num_proc=workers if workers > 1 else None,
        remove_columns=["text"],
    )
    mapped.save_to_disk(str(out / "saved"))
    return {"documents_out": len(mapped), "tokens": sum(len(ids) for ids in mapped["input_ids"])}


def run_prepare(corpus: Path, tokenizer: Path, out: Path, workers: int, *, dedup: bool) -> dict[str, Any]:
    args = ["data", "prepare", str(corpus), "--tokenizer", str(tokenizer), "--out", str(out / "prepared")]
    args += ["--workers", str(workers), "--quiet"] + ([] if dedup else ["--no-exact-dedup", "--no-near-dedup"])
    with contextlib.redirect_stdout(io.StringIO()):  # its own summary table; the benchmark prints one
        code = elastrain(args)
    if code != 0:
        raise SystemExit("data prepare failed")
    manifest = json.loads((out / "prepared" / "manifest.json").read_text())
    return {
        "documents_out": manifest["documents"]["out"],
        "tokens": manifest["tokens"],
        "dropped": manifest["dropped"],
        "filtered": sum(manifest["filtered"].values()),
    }


def measure(documents: int, repeats: int, workers_list: list[int]) -> tuple[dict[str, dict[str, Any]], int]:
    """Every pipeline at every worker count on one generated corpus: per row median seconds, MB/s, counts."""
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tokenizer = train_tokenizer(root / "tok")
        corpus = root / "corpus.jsonl"
        size = make_corpus(corpus, documents, seed=0)
        cases: list[tuple[str, int, Any]] = []
        for workers in workers_list:
            cases.append((f"datasets.map x{workers}", workers, lambda o, w: run_datasets_map(corpus, tokenizer, o, w)))
            cases.append(
                (f"prepare x{workers}", workers, lambda o, w: run_prepare(corpus, tokenizer, o, w, dedup=True))
            )
            cases.append(
                (
                    f"prepare no-dedup x{workers}",
                    workers,
                    lambda o, w: run_prepare(corpus, tokenizer, o, w, dedup=False),
                )
            )
        for label, workers, run in cases:
            times: list[float] = []
            for repeat in range(repeats):
                out = root / f"{label.replace(' ', '_')}-{repeat}"
                out.mkdir()
                started = time.perf_counter()
                result = run(out, workers)
                times.append(time.perf_counter() - started)
            rows[label] = {"workers": workers, "seconds": summarise(times), **result}
            rows[label]["mb_per_second"] = size / 1e6 / rows[label]["seconds"]["median"]
            print(f"{label}: {rows[label]['seconds']['median']:.2f} s", file=sys.stderr)
    return rows, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    rows, size = measure(args.documents, args.repeats, args.workers)
    table = [
        [label, r["workers"], r["seconds"]["median"], r["mb_per_second"], r["documents_out"], r["tokens"]]
        for label, r in rows.items()
    ]
    header = ["pipeline", "workers", "seconds", "MB/s", "docs out", "tokens"]
    print_table(f"data prepare vs datasets.map, {args.documents} documents, {size / 1e6:.2f} MB jsonl", header, table)
    path = write_json("data_prepare", {"args": vars(args), "input_bytes": size, "rows": rows})
    print(f"wrote {path}", file=sys.stderr)
    best = max(args.workers)
    ratio = rows[f"prepare x{best}"]["mb_per_second"] / rows[f"datasets.map x{best}"]["mb_per_second"]
    print(
        f"summary: with {best} workers data prepare {rows[f'prepare x{best}']['mb_per_second']:.2f} MB/s "
        f"(no dedup {rows[f'prepare no-dedup x{best}']['mb_per_second']:.2f}) vs datasets.map "
        f"{rows[f'datasets.map x{best}']['mb_per_second']:.2f} MB/s ({ratio:.2f}x), dropping "
        f"{rows[f'prepare x{best}']['dropped']} of {args.documents} documents"
    )


if __name__ == "__main__":
    main()
