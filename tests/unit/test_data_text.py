"""The text source's pure parts: globs, formats, documents, the tokenizer, packing, the cache, prepared shards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.textdata import EOS, corpus_documents, train_tokenizer

from elastrain_trainer.config import DataConfig, ModelConfig
from elastrain_trainer.config.data import TextDataConfig
from elastrain_trainer.data import TokenSamples, build_samples, split_samples
from elastrain_trainer.data.packing import load_tokenizer, pack, token_dtype
from elastrain_trainer.data.prepared import ShardedTokens
from elastrain_trainer.data.textfiles import detect_format, read_documents, resolve_paths, split_paragraphs
from elastrain_trainer.data.textsource import load_text_tokens, tokenize_text
from elastrain_trainer.errors import SpecError

DOCS = corpus_documents()[:12]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tokenizer(tmp_path_factory.mktemp("tok"))


def write_corpus(root: Path, documents: list[str]) -> dict[str, Path]:
    """The same documents as jsonl, parquet, arrow (file and stream) and txt."""
    root.mkdir(parents=True, exist_ok=True)
    paths = {fmt: root / f"corpus.{fmt}" for fmt in ("jsonl", "parquet", "arrow", "txt")}
    paths["jsonl"].write_text("".join(json.dumps({"id": i, "text": d}) + "\n" for i, d in enumerate(documents)))
    table = pa.table({"id": list(range(len(documents))), "text": documents})
    pq.write_table(table, paths["parquet"], row_group_size=5)
    with pa.OSFile(str(paths["arrow"]), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=4)
    paths["arrow stream"] = root / "stream.arrow"  # the IPC stream format, as datasets' save_to_disk writes
    with pa.OSFile(str(paths["arrow stream"]), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table, max_chunksize=4)
    paths["txt"].write_text("\n\n".join(documents) + "\n")
    return paths


def test_globs_are_matched_sorted_and_without_repeats(tmp_path: Path) -> None:
    for name in ("b.txt", "a.txt", "c.jsonl"):
        (tmp_path / name).write_text("x")
    found = resolve_paths([str(tmp_path / "*.txt"), str(tmp_path / "a.*"), str(tmp_path / "*")])
    assert [p.name for p in found] == ["a.txt", "b.txt", "c.jsonl"]


def test_a_glob_that_matches_nothing_names_the_field_and_the_patterns(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        resolve_paths([str(tmp_path / "*.jsonl")])
    assert caught.value.field == "spec.trainer.data.text.paths"
    assert "*.jsonl" in str(caught.value) and "no file matches" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "requested", "expected"),
    [
        ("a.jsonl", "auto", "jsonl"),
        ("a.JSON", "auto", "jsonl"),
        ("a.parquet", "auto", "parquet"),
        ("a.arrow", "auto", "parquet"),
        ("a.txt", "auto", "txt"),
        ("a.data", "jsonl", "jsonl"),
    ],
)
def test_format_comes_from_the_ending_unless_set(name: str, requested: str, expected: str) -> None:
    assert detect_format(Path(name), requested) == expected


def test_an_unknown_ending_with_format_auto_names_the_format_field() -> None:
    with pytest.raises(SpecError) as caught:
        detect_format(Path("/data/part-0.bin"))
    assert caught.value.field == "spec.trainer.data.text.format"
    assert ".bin" in str(caught.value)


def test_a_txt_files_documents_are_blank_line_separated_paragraphs() -> None:
    lines = ["\n", "first line\n", "  continues\n", "\n", "   \n", "second\n", "\n", "third"]
    assert list(split_paragraphs(iter(lines))) == ["first line\n  continues", "second", "third"]


def test_jsonl_parquet_arrow_file_and_stream_and_txt_give_the_same_documents(tmp_path: Path) -> None:
    paths = write_corpus(tmp_path, DOCS)
    for fmt, path in paths.items():
        assert list(read_documents(path, detect_format(path))) == DOCS, fmt


def test_a_missing_jsonl_field_or_parquet_column_names_the_field_setting(tmp_path: Path) -> None:
    paths = write_corpus(tmp_path, DOCS)
    for fmt in ("jsonl", "parquet"):
        with pytest.raises(SpecError) as caught:
            list(read_documents(paths[fmt], detect_format(paths[fmt]), text_field="body"))
        assert caught.value.field == "spec.trainer.data.text.field"
        assert "'body'" in str(caught.value) and "text" in str(caught.value)  # names what is there


def test_the_tokenizer_dir_gives_its_eos_and_packing_ends_every_document_with_it(tokenizer_dir: Path) -> None:
    tokenizer = load_tokenizer(tokenizer_dir)
    assert tokenizer.eos_token == EOS and tokenizer.eos_id == tokenizer.tokenizer.token_to_id(EOS)
    encoded = tokenizer.encode_documents(["hello elastic world", "a"])
    assert all(ids[-1] == tokenizer.eos_id and tokenizer.eos_id not in ids[:-1] for ids in encoded)
    assert tokenizer.tokenizer.decode(encoded[0][:-1]) == "hello elastic world"
    packed = pack(encoded, token_dtype(tokenizer.vocab_size))
    assert packed.dtype == np.uint16
    assert packed.tolist() == encoded[0] + encoded[1]


def test_token_dtype_grows_past_uint16() -> None:
    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32


def test_a_directory_without_tokenizer_json_names_the_tokenizer_field(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_tokenizer(tmp_path)
    assert caught.value.field == "spec.trainer.data.text.tokenizer" and str(tmp_path) in str(caught.value)


def text_config(paths: list[str], tokenizer: Path, **extra: str) -> TextDataConfig:
    return TextDataConfig.model_validate({"paths": paths, "tokenizer": str(tokenizer), **extra})


def test_the_text_source_reads_every_format_to_the_same_tokens(tmp_path: Path, tokenizer_dir: Path) -> None:
    paths = write_corpus(tmp_path / "corpus", DOCS)
    tokens = {fmt: tokenize_text(text_config([str(p)], tokenizer_dir)) for fmt, p in paths.items()}
    expected = pack(load_tokenizer(tokenizer_dir).encode_documents(DOCS), np.dtype(np.uint16))
    for fmt, got in tokens.items():
        np.testing.assert_array_equal(got, expected, err_msg=fmt)


def test_the_text_source_is_cached_by_content(
    tmp_path: Path, tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = write_corpus(tmp_path / "corpus", DOCS)
    cache = tmp_path / "cache"
    cfg = text_config([str(paths["jsonl"])], tokenizer_dir)
    first = load_text_tokens(cfg, cache=cache)
    assert len(list(cache.glob("*.npy"))) == 1
    monkeypatch.setattr("elastrain_trainer.data.textsource.tokenize_text", lambda _: pytest.fail("not cached"))
    np.testing.assert_array_equal(load_text_tokens(cfg, cache=cache), first)
    paths["jsonl"].write_text(json.dumps({"text": "changed content"}) + "\n")
    monkeypatch.undo()
    changed = load_text_tokens(cfg, cache=cache)  # new content, new key: built again
    assert len(list(cache.glob("*.npy"))) == 2 and len(changed) < len(first)


def test_text_samples_keep_their_index_and_split_like_any_tokens(
    tmp_path: Path, tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELASTRAIN_DATA_CACHE", str(tmp_path / "cache"))
    paths = write_corpus(tmp_path / "corpus", corpus_documents())
    model = ModelConfig(vocab_size=384, seq_len=16)
    data = DataConfig.model_validate(
        {"source": "text", "text": {"paths": [str(paths["txt"])], "tokenizer": str(tokenizer_dir)}}
    )
    a, b = build_samples(data, model, seed=1), build_samples(data, model, seed=2)
    flat = tokenize_text(data.text)  # type: ignore[arg-type]
    assert a.num_samples == (len(flat) - 1) // 16
    inputs, targets = a.batch([3, 0])
    np.testing.assert_array_equal(inputs[0].numpy(), flat[48:64])
    np.testing.assert_array_equal(targets[0].numpy(), flat[49:65])
    assert all((x == y).all() for x, y in zip(a.batch([5]), b.batch([5]), strict=True))  # seed does not matter
    train, held_out = split_samples(a.num_samples, evaluate=True)
    assert train + len(held_out) == a.num_samples and len(held_out) >= 1


def test_a_model_vocabulary_smaller_than_the_tokenizers_names_vocab_size(
    tmp_path: Path, tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELASTRAIN_DATA_CACHE", str(tmp_path / "cache"))
    paths = write_corpus(tmp_path / "corpus", DOCS)
    data = DataConfig.model_validate(
        {"source": "text", "text": {"paths": [str(paths["txt"])], "tokenizer": str(tokenizer_dir)}}
    )
    with pytest.raises(SpecError) as caught:
        build_samples(data, ModelConfig(vocab_size=256, seq_len=16), seed=0)
    assert caught.value.field == "spec.trainer.model.vocabSize" and "384" in str(caught.value)
    assert not (tmp_path / "cache").exists()  # refused before tokenizing the corpus


def test_sharded_tokens_slice_like_their_concatenation() -> None:
    rng = np.random.default_rng(0)
    shards = [rng.integers(0, 100, size=n).astype(np.uint16) for n in (7, 0, 3, 11)]
    flat = np.concatenate(shards)
    view = ShardedTokens(shards)
    assert len(view) == len(flat)
    for start in range(len(flat) + 1):
        for stop in range(start, len(flat) + 2):
            np.testing.assert_array_equal(view[start:stop], flat[start:stop])


def test_token_parts_expose_the_packed_array_for_data_checks() -> None:
    rng = np.random.default_rng(1)
    shards = [rng.integers(0, 50, size=n).astype(np.uint16) for n in (40, 25)]
    flat = np.concatenate(shards)
    parts = TokenSamples(ShardedTokens(shards), seq_len=8).token_parts()
    np.testing.assert_array_equal(np.concatenate(parts), flat)
    np.testing.assert_array_equal(np.concatenate(TokenSamples(flat, seq_len=8).token_parts()), flat)
