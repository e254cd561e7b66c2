"""``elastrain data prepare`` on a corpus with planted duplicates and junk: counts, determinism, training input.

The corpus is the shipped one split over a jsonl and a txt file, plus exact duplicates (one differing
only in what normalisation removes), near duplicates (a word changed), a too-short document and a
boilerplate one. The output must drop exactly those, keep the rest in input order, and be
byte-identical across runs and across 1 vs 2 worker processes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from tests.textdata import corpus_documents, train_tokenizer

from elastrain_trainer.cli import main
from elastrain_trainer.config import DataConfig, ModelConfig
from elastrain_trainer.data import build_samples
from elastrain_trainer.data.packing import load_tokenizer, pack
from elastrain_trainer.data.prepare import normalize
from elastrain_trainer.data.prepared import ShardedTokens, read_manifest
from elastrain_trainer.errors import SpecError

DOCS = corpus_documents()


def near(text: str) -> str:
    words = text.split()
    words[len(words) // 2] = "CHANGED"
    return " ".join(words)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    first = [*DOCS[:30], DOCS[2] + "   \r\n", near(DOCS[5])]
    (root / "a.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in first))
    boilerplate = "Home | About | Contact\n" * 5 + "Copyright."
    second = [*DOCS[30:60], DOCS[40], near(DOCS[10]), "Too short.", boilerplate]
    (root / "b.txt").write_text("\n\n".join(second) + "\n")
    return root


def prepare(corpus: Path, tokenizer: Path, out: Path, *extra: str) -> int:
    args = ["data", "prepare", str(corpus / "*.jsonl"), str(corpus / "*.txt"), "--tokenizer", str(tokenizer)]
    return main([*args, "--out", str(out), "--shard-tokens", "2000", "--quiet", *extra])


def files_of(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_prepare_drops_the_planted_duplicates_and_junk_and_says_so(
    corpus: Path, tokenizer_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert prepare(corpus, tokenizer_dir, tmp_path / "out") == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["documents"] == {"in": 66, "out": 60}
    assert manifest["dropped"] == {"exact_duplicates": 2, "near_duplicates": 2}
    assert manifest["filtered"] == {"too_short": 1, "too_long": 0, "repeated_lines": 1, "repeated_ngrams": 0}
    # Per file: read, and kept (a.jsonl: an exact and a near duplicate; b.txt: those and 2 filtered).
    assert [(i["path"].rsplit("/", 1)[-1], i["documents"], i["kept"]) for i in manifest["inputs"]] == [
        ("a.jsonl", 32, 30),
        ("b.txt", 34, 30),
    ]
    assert all(len(i["sha256"]) == 64 for i in manifest["inputs"])
    tokenizer = load_tokenizer(tokenizer_dir)
    assert manifest["tokenizer"]["eos_id"] == tokenizer.eos_id and manifest["dtype"] == "uint16"
    expected = pack(tokenizer.encode_documents([normalize(d) for d in DOCS]), np.dtype(np.uint16))
    assert manifest["tokens"] == len(expected) == sum(s["tokens"] for s in manifest["shards"])
    assert len(manifest["shards"]) == -(-len(expected) // 2000)
    shards = [np.fromfile(tmp_path / "out" / s["file"], dtype=np.uint16) for s in manifest["shards"]]
    np.testing.assert_array_equal(np.concatenate(shards), expected)  # kept documents, in input order, eos after each
    table = capsys.readouterr().out
    for row in (r"exact duplicates +2\n", r"near duplicates +2\n", r"documents out +60\n", r"too_short +1\n"):
        assert re.search(row, table), row


def test_prepare_is_byte_identical_across_runs_and_worker_counts(
    corpus: Path, tokenizer_dir: Path, tmp_path: Path
) -> None:
    runs = (("one", "1", "256"), ("again", "1", "5"), ("two", "2", "8"))  # 2 workers share 9 batches of 8
    for name, workers, batch in runs:
        assert prepare(corpus, tokenizer_dir, tmp_path / name, "--workers", workers, "--batch-docs", batch) == 0
    one = files_of(tmp_path / "one")
    assert len(one) >= 3  # several shards and the manifest
    assert files_of(tmp_path / "again") == one
    assert files_of(tmp_path / "two") == one


def test_the_flags_change_what_is_dropped(corpus: Path, tokenizer_dir: Path, tmp_path: Path) -> None:
    extra = ["--no-near-dedup", "--min-chars", "5", "--max-dup-line-fraction", "0.9"]
    assert prepare(corpus, tokenizer_dir, tmp_path / "out", *extra) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["documents"] == {"in": 66, "out": 63}
    assert manifest["dropped"] == {"exact_duplicates": 2, "near_duplicates": 0}
    # the boilerplate passes the looser line filter but not the 2-gram one ("home about" 5 times)
    assert manifest["filtered"] == {"too_short": 0, "too_long": 0, "repeated_lines": 0, "repeated_ngrams": 1}
    assert manifest["settings"]["filters"]["min_chars"] == 5 and manifest["settings"]["dedup_near"] is False
    assert [i["kept"] for i in manifest["inputs"]] == [31, 32]


def test_training_from_the_output_directory_reads_samples_across_shards(
    corpus: Path, tokenizer_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert prepare(corpus, tokenizer_dir, out) == 0
    prepared = read_manifest(out)
    flat = np.concatenate([np.fromfile(out / f, dtype=np.uint16) for f in prepared.shard_files])
    model = ModelConfig(vocab_size=384, seq_len=32)
    for path in (out, out / "manifest.json"):
        samples = build_samples(DataConfig(source="file", path=str(path)), model, seed=0)
        assert isinstance(samples.tokens, ShardedTokens) and samples.num_samples == (len(flat) - 1) // 32
        straddling = 2000 // 32  # sample 62 holds tokens 1984..2016, across the first shard's end
        inputs, targets = samples.batch([straddling, 0])
        np.testing.assert_array_equal(inputs[0].numpy(), flat[1984:2016])
        np.testing.assert_array_equal(targets[0].numpy(), flat[1985:2017])


def test_a_bad_manifest_or_missing_inputs_name_the_field(corpus: Path, tokenizer_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(SpecError) as caught:
        read_manifest(tmp_path)
    assert caught.value.field == "spec.trainer.data.path"
    assert prepare(tmp_path / "nowhere", tokenizer_dir, tmp_path / "out") == 2


def test_docs_data_md_names_every_prepare_flag_with_its_default() -> None:
    import argparse

    from elastrain_trainer.cli import build_parser

    doc = (Path(__file__).resolve().parents[2] / "docs" / "data.md").read_text()
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    data = sub.choices["data"]
    prepare_parser = next(a for a in data._actions if isinstance(a, argparse._SubParsersAction)).choices["prepare"]
    for action in prepare_parser._actions:
        flag = max(action.option_strings, key=len, default=None)
        if flag is None or flag in ("--help", "--quiet", "--out", "--tokenizer", "--format", "--field"):
            continue
        shown = (
            f"`{flag}`"
            if isinstance(action.default, bool) or action.default is None
            else f"`{flag}` ({action.default})"
        )
        assert shown in doc, f"docs/data.md does not show {shown}"
