"""Jobs train from real text: a text source tokenized in the pods, and ``elastrain data prepare`` output.

One Ray worker pod of one rank, the built-in GPT with the test tokenizer's vocabulary (384), one
epoch of the shipped corpus; the shard ledger must count every sample exactly once and the loss on
real text must go down.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.textdata import CORPUS, train_tokenizer
from tests.trainer.helpers import count_samples, fast_options, tiny_config

from elastrain_trainer.cli import main
from elastrain_trainer.data import build_samples
from elastrain_trainer.driver import Driver
from elastrain_trainer.localmode import LocalCluster

SEQ_LEN, BATCH = 32, 16


@pytest.fixture(scope="module")
def one_pod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One worker pod of one rank; the text cache in a temporary directory (the pods inherit the variable)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ELASTRAIN_DATA_CACHE", str(tmp_path_factory.mktemp("text-cache")))
        cluster = LocalCluster(pods=1, ranks_per_pod=1)
        try:
            yield cluster
        finally:
            cluster.shutdown()


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tokenizer(tmp_path_factory.mktemp("tok"))


def train_one_epoch(data: dict[str, Any]) -> None:
    probe = tiny_config(
        model={"vocabSize": 384, "seqLen": SEQ_LEN, "dim": 32, "numHeads": 2, "numLayers": 2}, data=data
    )
    num_samples = build_samples(probe.data, probe.model, seed=probe.seed).num_samples
    steps = math.ceil(num_samples / BATCH)
    cfg = probe.model_copy(update={"steps": steps, "global_batch_size": BATCH})
    driver = Driver(cfg, fast_options(start_groups=1))
    try:
        result = driver.run()
    finally:
        driver.shutdown()
    story = "\n".join(map(str, result.events))
    assert result.step == steps, story
    audit = result.ledger.audit(0)
    assert audit.num_samples == num_samples and audit.exact, story
    assert sorted(count_samples(result.committed)[0].values()) == [1] * num_samples
    losses = [m.loss for m in result.metrics if m.committed]
    assert losses[0] > math.log(384) - 0.5 and losses[-1] < losses[0] - 0.5, losses  # it learns the text


def test_a_job_trains_from_a_text_source(one_pod: LocalCluster, tokenizer_dir: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "elastic.txt").write_bytes(CORPUS.read_bytes())
    text = {"paths": [str(corpus / "*.txt")], "tokenizer": str(tokenizer_dir)}
    train_one_epoch({"source": "text", "text": text, "numShards": 8})


def test_a_job_trains_from_data_prepare_output(one_pod: LocalCluster, tokenizer_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    args = ["data", "prepare", str(CORPUS), "--tokenizer", str(tokenizer_dir), "--out", str(out)]
    assert main([*args, "--shard-tokens", "1500", "--quiet"]) == 0
    assert len(json.loads((out / "manifest.json").read_text())["shards"]) >= 4  # samples straddle shards
    train_one_epoch({"source": "file", "path": str(out), "numShards": 8})
