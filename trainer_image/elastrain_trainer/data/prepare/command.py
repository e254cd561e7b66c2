"""``elastrain data prepare``: flags, a progress bar while it runs, a summary table when it is done."""

from __future__ import annotations

import argparse
import sys
import time

from elastrain_trainer.data.prepare.clean import FILTER_REASONS, FilterOptions
from elastrain_trainer.data.prepare.near import NearOptions
from elastrain_trainer.data.prepare.pipeline import PrepareOptions, PrepareSummary, prepare
from elastrain_trainer.errors import SpecError


def add_prepare_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``data prepare`` under the ``elastrain`` parser's subcommands."""
    data = sub.add_parser("data", help="data tools")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser(
        "prepare",
        help="clean, deduplicate, tokenize and shard text corpora for data.source: file",
        description="Same input and flags give byte-identical shards and manifest, whatever --workers.",
    )
    f, n = FilterOptions(), NearOptions()
    p.add_argument("inputs", nargs="+", help="glob patterns of jsonl, parquet/arrow or txt files (read sorted)")
    p.add_argument("--tokenizer", required=True, help="a Hugging Face tokenizer directory")
    p.add_argument("--out", required=True, help="output directory (shard-*.bin and manifest.json)")
    p.add_argument("--format", default="auto", choices=["auto", "jsonl", "parquet", "txt"])
    p.add_argument("--field", default="text", help="jsonl field or parquet column holding the text")
    p.add_argument("--workers", type=int, default=1, help="processes that clean and tokenize (default 1)")
    p.add_argument(
        "--batch-docs", type=int, default=256, help="documents per task sent to a worker (does not change the output)"
    )
    p.add_argument("--shard-tokens", type=int, default=1 << 24, help="tokens per shard file (default 2^24)")
    p.add_argument("--min-chars", type=int, default=f.min_chars, help=f"drop shorter documents ({f.min_chars})")
    p.add_argument("--max-chars", type=int, default=f.max_chars, help=f"drop longer documents ({f.max_chars})")
    p.add_argument(
        "--max-dup-line-fraction",
        type=float,
        default=f.max_dup_line_fraction,
        help=f"drop documents with more of their characters in repeated lines ({f.max_dup_line_fraction})",
    )
    p.add_argument(
        "--max-top-ngram-fraction",
        type=float,
        default=f.max_top_ngram_fraction,
        help=f"drop documents whose top word 2-gram covers more of their characters ({f.max_top_ngram_fraction})",
    )
    p.add_argument("--no-exact-dedup", action="store_true", help="keep exact duplicates")
    p.add_argument("--no-near-dedup", action="store_true", help="keep near duplicates")
    p.add_argument("--near-threshold", type=float, default=n.threshold, help=f"MinHash LSH Jaccard ({n.threshold})")
    p.add_argument("--num-perm", type=int, default=n.num_perm, help=f"MinHash permutations ({n.num_perm})")
    p.add_argument("--shingle", type=int, default=n.shingle, help=f"shingle length in characters ({n.shingle})")
    p.add_argument("--seed", type=int, default=n.seed, help=f"MinHash seed ({n.seed})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def options_from_args(args: argparse.Namespace) -> PrepareOptions:
    return PrepareOptions(
        inputs=tuple(args.inputs),
        tokenizer=args.tokenizer,
        out=args.out,
        format=args.format,
        text_field=args.field,
        filters=FilterOptions(
            min_chars=args.min_chars,
            max_chars=args.max_chars,
            max_dup_line_fraction=args.max_dup_line_fraction,
            max_top_ngram_fraction=args.max_top_ngram_fraction,
        ),
        near=NearOptions(threshold=args.near_threshold, num_perm=args.num_perm, shingle=args.shingle, seed=args.seed),
        dedup_exact=not args.no_exact_dedup,
        dedup_near=not args.no_near_dedup,
        shard_tokens=args.shard_tokens,
        workers=args.workers,
        batch_docs=args.batch_docs,
    )


def run_prepare(args: argparse.Namespace) -> int:
    """The subcommand: 0 when done, 2 with a message naming the flag when the input is wrong."""
    from tqdm import tqdm

    options = options_from_args(args)
    bar = tqdm(total=None, unit="B", unit_scale=True, disable=args.quiet, file=sys.stderr, desc="prepare")

    def progress(read: int, documents: int) -> None:
        bar.update(read)
        bar.set_postfix(docs=documents)

    started = time.perf_counter()
    try:
        summary = prepare(options, progress=progress)
    except SpecError as err:
        print(f"elastrain data prepare: {err}", file=sys.stderr)
        return 2
    finally:
        bar.close()
    print(render_summary(summary, seconds=time.perf_counter() - started, out=options.out))
    return 0


def render_summary(summary: PrepareSummary, *, seconds: float, out: str) -> str:
    """The summary table printed at the end."""
    mb = summary.input_bytes / 1e6
    rows = [
        ("documents in", f"{summary.documents_in}"),
        *((f"filtered: {reason}", f"{summary.filtered[reason]}") for reason in FILTER_REASONS),
        ("exact duplicates", f"{summary.exact_duplicates}"),
        ("near duplicates", f"{summary.near_duplicates}"),
        ("documents out", f"{summary.documents_out}"),
        ("tokens", f"{summary.tokens}"),
        ("shards", f"{summary.shards}"),
        ("input", f"{mb:.2f} MB in {seconds:.1f} s ({mb / seconds if seconds else 0.0:.2f} MB/s)"),
        ("output", out),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)
