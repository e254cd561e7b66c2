"""The data checks run before the first step: one test per check and per message, on real files.

Each check is a pure function of a token array (a memory map of a file written here) and the
file's size; ``check_data`` composes them for a TrainerConfig as the driver calls it.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.textdata import corpus_documents, train_tokenizer

from elastrain_trainer.config import ModelConfig, TrainerConfig
from elastrain_trainer.data.checks import (
    OutOfVocab,
    check_data,
    check_file_size,
    check_samples,
    find_out_of_vocab,
    model_vocab_size,
    open_token_file,
    scan_chunks,
)
from elastrain_trainer.errors import SpecError


def write_tokens(path: Path, tokens: np.ndarray) -> str:
    tokens.tofile(path)
    return str(path)


def config(path: str, **overrides: Any) -> TrainerConfig:
    data: dict[str, Any] = {
        "model": {"dim": 32, "numHeads": 2, "numLayers": 1, "seqLen": 64, "vocabSize": 256},
        "data": {"source": "file", "path": path, "numShards": 4},
        "steps": 10,
        "globalBatchSize": 8,
    }
    data.update(overrides)
    return TrainerConfig.model_validate(data)


def message(raised: pytest.ExceptionInfo[SpecError]) -> str:
    return str(raised.value)


# -- the file exists, is readable and holds whole tokens ------------------------------------------------


def test_a_missing_file_names_the_field_the_path_and_the_mount_fix(tmp_path: Path) -> None:
    missing = str(tmp_path / "no_such_file.bin")
    with pytest.raises(SpecError) as raised:
        open_token_file(missing)
    assert raised.value.field == "spec.trainer.data.path" and raised.value.value == missing
    assert message(raised) == (
        f"spec.trainer.data.path: no such file in the pod (value: {missing}); "
        "mount it into the pods through spec.pod volumes and volumeMounts, or fix spec.trainer.data.path"
    )


def test_a_directory_is_not_a_token_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"^spec.trainer.data.path: is not a regular file"):
        open_token_file(str(tmp_path))


def test_a_readable_file_gives_its_size(tmp_path: Path) -> None:
    assert open_token_file(write_tokens(tmp_path / "t.bin", np.arange(10, dtype=np.uint16))) == 20


@pytest.mark.parametrize(
    ("size", "dtype", "tokens", "says"),
    [
        (20, "uint16", 10, None),
        (20, "uint32", 5, None),
        (21, "uint16", None, "its size 21 bytes is not a whole number of uint16 tokens (2 bytes each)"),
        (22, "uint32", None, "its size 22 bytes is not a whole number of uint32 tokens (4 bytes each)"),
        (0, "uint16", None, "the file is empty"),
    ],
    ids=["uint16-whole", "uint32-whole", "uint16-odd-byte", "uint32-truncated", "empty"],
)
def test_check_file_size(size: int, dtype: str, tokens: int | None, says: str | None) -> None:
    if says is None:
        assert check_file_size(size, np.dtype(dtype), path="/d/t.bin") == tokens
        return
    with pytest.raises(SpecError) as raised:
        check_file_size(size, np.dtype(dtype), path="/d/t.bin")
    assert message(raised).startswith(f"spec.trainer.data.path: {says} (value: /d/t.bin); "), message(raised)
    if size:
        assert "check spec.trainer.data.tokenDtype" in message(raised)


# -- token ids below the vocabulary ---------------------------------------------------------------------


def test_the_largest_out_of_vocabulary_id_is_found_with_its_first_offset(tmp_path: Path) -> None:
    tokens = np.arange(5000, dtype=np.uint16) % 200
    tokens[1234] = 59998
    tokens[4000] = 59998  # the same id later: the first offset is reported
    tokens[3000] = 300
    mapped = np.memmap(write_tokens(tmp_path / "t.bin", tokens), dtype=np.uint16, mode="r")
    scan = find_out_of_vocab(mapped, 256, chunk=1000)
    assert scan.out_of_vocab == OutOfVocab(token_id=59998, offset=1234)
    assert scan.scanned == scan.total == 5000


def test_ids_below_the_vocabulary_pass_and_the_boundary_is_exclusive(tmp_path: Path) -> None:
    tokens = np.full(100, 255, dtype=np.uint16)
    assert find_out_of_vocab(tokens, 256, chunk=7).out_of_vocab is None
    assert find_out_of_vocab(tokens, 255, chunk=7).out_of_vocab == OutOfVocab(token_id=255, offset=0)


def test_past_the_budget_the_scan_samples_evenly_and_says_how_much_it_read() -> None:
    chunks = scan_chunks(1000, chunk=10, budget=100)
    assert all(len(c) == 10 for c in chunks) and 10 <= len(chunks) <= 11
    assert chunks[0].start == 0 and chunks[-1].stop == 1000, "first and last chunk are read"
    gaps = {b.start - a.start for a, b in itertools.pairwise(chunks)}
    assert max(gaps) <= 100, chunks
    assert scan_chunks(95, chunk=10, budget=100) == [range(s, min(s + 10, 95)) for s in range(0, 95, 10)]
    scan = find_out_of_vocab(np.zeros(1000, dtype=np.uint16), 256, chunk=10, budget=100)
    assert scan.scanned == 10 * len(chunks) and scan.total == 1000


# -- enough samples ---------------------------------------------------------------------------------------


def test_fewer_samples_than_one_global_batch_is_an_error_naming_both_fields() -> None:
    with pytest.raises(SpecError) as raised:
        check_samples(samples=1, global_batch_size=8, num_shards=4, steps=50, seq_len=64, path="/d/t.bin")
    assert message(raised) == (
        "spec.trainer.data.path: holds 1 samples of spec.trainer.model.seqLen 64 tokens, fewer than one global "
        "batch (spec.trainer.globalBatchSize 8) (value: /d/t.bin); check that the file is complete, "
        "or lower spec.trainer.globalBatchSize or spec.trainer.model.seqLen"
    )


def test_more_shards_than_samples_is_an_error_on_num_shards() -> None:
    with pytest.raises(SpecError) as raised:
        check_samples(samples=10, global_batch_size=8, num_shards=64, steps=1, seq_len=64, path="/d/t.bin")
    assert raised.value.field == "spec.trainer.data.numShards" and raised.value.value == 64
    assert message(raised).endswith("set spec.trainer.data.numShards to at most 10")


@pytest.mark.parametrize(
    ("samples", "steps", "repeats"),
    [(100, 10, None), (80, 10, None), (79, 10, 2), (8, 50, 50)],
    ids=["more-than-enough", "exactly-one-epoch", "just-short-repeats-twice", "one-batch-repeats-50-times"],
)
def test_data_that_repeats_is_a_warning_saying_how_often(samples: int, steps: int, repeats: int | None) -> None:
    warnings = check_samples(samples=samples, global_batch_size=8, num_shards=4, steps=steps, seq_len=64, path="/t")
    if repeats is None:
        assert warnings == ()
    else:
        assert warnings == (
            f"spec.trainer.data.path holds {samples} samples, fewer than {steps * 8} ({steps} steps x 8): the data "
            f"repeats {repeats} times (epochs); check the file is complete, or lower spec.trainer.steps",
        )


# -- check_data: what the driver runs ---------------------------------------------------------------------


def test_check_data_passes_a_good_file_and_reports_what_it_checked(tmp_path: Path) -> None:
    path = write_tokens(tmp_path / "t.bin", (np.arange(64 * 80 + 1) % 256).astype(np.uint16))
    report = check_data(config(path))
    assert report is not None and report.warnings == () and report.samples == 80
    assert report.describe() == "data checked: 5121 tokens, 80 training samples, token ids in vocabulary"


def test_check_data_of_an_out_of_vocabulary_file_names_id_offset_vocab_and_fix(tmp_path: Path) -> None:
    tokens = (np.arange(64 * 80 + 1) % 256).astype(np.uint16)
    tokens[1234] = 59998
    path = write_tokens(tmp_path / "t.bin", tokens)
    with pytest.raises(SpecError) as raised:
        check_data(config(path))
    assert message(raised) == (
        f"spec.trainer.data.path: token id 59998 at offset 1234 is >= spec.trainer.model.vocabSize 256 "
        f"(value: {path}); set spec.trainer.model.vocabSize to at least 59999, or check "
        "spec.trainer.data.tokenDtype (uint16) and the tokenizer"
    )


def test_check_data_of_a_tiny_file_fails_before_training(tmp_path: Path) -> None:
    path = write_tokens(tmp_path / "t.bin", np.arange(100, dtype=np.uint16))
    with pytest.raises(SpecError, match=r"holds 1 samples .* fewer than one global batch"):
        check_data(config(path))


def test_check_data_counts_only_training_samples_when_some_are_held_out(tmp_path: Path) -> None:
    path = write_tokens(tmp_path / "t.bin", (np.arange(64 * 80 + 1) % 256).astype(np.uint16))
    report = check_data(config(path, evalIntervalSteps=5))
    assert report is not None and report.samples == 76  # one twentieth held out for evaluation


def test_check_data_of_synthetic_data_checks_nothing() -> None:
    assert check_data(TrainerConfig.model_validate({"steps": 20})) is None


# -- the model's own vocabulary, text sources --------------------------------------------------------


def test_a_hugging_face_models_vocabulary_is_read_from_its_config(tmp_path: Path) -> None:
    inline = ModelConfig.model_validate({"source": "huggingface", "huggingface": {"config": {"vocab_size": 32000}}})
    assert model_vocab_size(inline) == 32000
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "vocab_size": 5000}))
    on_disk = ModelConfig.model_validate({"source": "huggingface", "huggingface": {"path": str(tmp_path)}})
    assert model_vocab_size(on_disk) == 5000
    assert model_vocab_size(ModelConfig(vocab_size=300)) == 300


def test_token_ids_are_checked_against_a_hugging_face_models_vocabulary_not_vocab_size(tmp_path: Path) -> None:
    path = write_tokens(tmp_path / "t.bin", np.arange(4000, dtype=np.uint16) % 1000)
    hf = {"seqLen": 64, "source": "huggingface", "huggingface": {"config": {"vocab_size": 1000}}}
    assert check_data(config(path, model=hf)) is not None  # ids up to 999 < 1000, though vocabSize is 256
    small = {**hf, "huggingface": {"config": {"vocab_size": 900}}}
    with pytest.raises(SpecError) as raised:
        check_data(config(path, model=small))
    assert "token id 999" in message(raised) and ">= spec.trainer.model.vocabSize 900" in message(raised)


def _text_config(tmp_path: Path, *, vocab_size: int, **overrides: Any) -> TrainerConfig:
    tokenizer = train_tokenizer(tmp_path / "tok")
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": doc}) + "\n" for doc in corpus_documents()))
    data = {"source": "text", "numShards": 4, "text": {"paths": [str(corpus)], "tokenizer": str(tokenizer)}}
    model = {"source": "huggingface", "seqLen": 32, "huggingface": {"config": {"vocab_size": vocab_size}}}
    return config("unused", model=model, data=data, **overrides)


def test_a_text_source_is_tokenized_and_checked_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELASTRAIN_DATA_CACHE", str(tmp_path / "cache"))
    report = check_data(_text_config(tmp_path, vocab_size=384))
    assert report is not None and report.samples > 8 and report.scanned == report.tokens


def test_a_tokenizer_larger_than_the_models_vocabulary_names_the_tokenizer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELASTRAIN_DATA_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SpecError) as raised:
        check_data(_text_config(tmp_path, vocab_size=100))
    assert message(raised).startswith("spec.trainer.data.text.tokenizer: token id"), message(raised)


def test_a_text_source_smaller_than_one_global_batch_names_its_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELASTRAIN_DATA_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SpecError) as raised:
        check_data(_text_config(tmp_path, vocab_size=384, globalBatchSize=100000))
    assert message(raised).startswith("spec.trainer.data.text.paths:"), message(raised)
