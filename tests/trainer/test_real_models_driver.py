"""Real model sources through the real driver: 2 replica groups x 2 ranks on a local Ray cluster.

- A tiny Llama from pretrained safetensors (saved by the test) trains; one group loses a rank,
  restarts and heals from its peer; the ledger is exact; the final export reloads in
  ``transformers`` with logits equal to the trained weights' (tolerance: none, bit-equal).
- A ``python`` entrypoint model from a module on the workers' PYTHONPATH trains (its loss and
  kwargs in use) and checkpoints under its own parameter names.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
import torch
from tests.textdata import train_tokenizer
from tests.tinymodels import save_tiny_llama
from tests.trainer.helpers import assert_bit_identical, count_samples, fast_options, full_parameters
from torch.nn import functional as F  # noqa: N812

from elastrain_trainer.checkpoint import CheckpointStore
from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.data import build_samples
from elastrain_trainer.driver import Driver
from elastrain_trainer.localmode import LocalCluster

VOCAB = 384  # the test tokenizer's size
WRAPPER = "_checkpoint_wrapped_module."


@pytest.fixture(scope="module")
def user_pods(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """2 pods x 2 ranks whose Ray workers import the user's model module from a directory of the test's."""
    code = tmp_path_factory.mktemp("user-code")
    shutil.copy(Path(__file__).with_name("user_model.py"), code / "elastrain_user_model.py")
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(code), saved) if p)
    cluster = LocalCluster(pods=2, ranks_per_pod=2)
    try:
        yield cluster
    finally:
        cluster.shutdown()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def save_pretrained_llama(directory: Path) -> Any:
    model = save_tiny_llama(directory, vocab_size=VOCAB)
    train_tokenizer(directory, vocab_size=VOCAB)  # a model directory with its tokenizer, as on the Hub
    return model


def wait_for_replacement(driver: Driver, node: object, victim: object) -> None:
    """Keep the job from finishing before the restarted group has joined (the machine is slow)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not any(
        g.ready and g.node_id == node and g.group_id != victim for g in driver.groups.values()
    ):
        driver.reconcile()
        driver._poll_setup()
        time.sleep(0.1)


def test_pretrained_llama_trains_heals_and_exports(user_pods: LocalCluster, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pretrained = save_pretrained_llama(tmp_path / "llama")
    cfg = TrainerConfig.model_validate(
        {
            "model": {
                "source": "huggingface",
                "huggingface": {"path": str(tmp_path / "llama"), "weights": True},
                "seqLen": 16,
                "vocabSize": VOCAB,
                "activationCheckpointing": "selective",
            },
            "data": {"syntheticTokens": 1024, "numShards": 6},
            "steps": 16,
            "globalBatchSize": 8,
            "lrSchedule": {"warmupSteps": 2},
            "optimizer": {"lr": 0.003},
            "seed": 7,
        }
    )
    driver = Driver(cfg, fast_options(export_dir=str(tmp_path / "export"), start_groups=2))
    state: dict[str, Any] = {}

    def hook(d: Driver, step: int) -> None:
        together = len(d.committed) >= 2 and all(len(a) == 2 for a in d.committed[-2:])
        if "victim" not in state and together:
            victim = d.groups[sorted(g.group_id for g in d.groups.values() if g.ready)[1]]
            state.update(victim=victim.group_id, killed_at=step, node=victim.node_id)
            ray.kill(victim.actors[1], no_restart=True)  # one rank dies: its whole group restarts and heals
        if "victim" in state and step >= cfg.steps - 3:
            wait_for_replacement(d, state["node"], state["victim"])

    try:
        result = driver.run(hook=hook)
        fingerprints = driver.fingerprints()
    finally:
        driver.shutdown()
    assert result.step == cfg.steps
    kinds = [e["kind"] for e in result.events]
    assert "restored" not in kinds, "\n".join(map(str, result.events))
    healed = [e["group"] for e in result.events if e["kind"] == "group_healed" and e["step"] > state["killed_at"]]
    assert len(healed) == 1 and healed[0] != state["victim"]
    survivor, newcomer = sorted(fingerprints)[0], healed[0]
    assert survivor != newcomer and newcomer in result.committed[-1]
    assert_bit_identical(fingerprints[survivor], fingerprints[newcomer])
    counts = count_samples(result.committed)
    finished = [e for e in counts if result.ledger.audit(e).trained == result.ledger.num_samples]
    assert finished
    for epoch in finished:
        assert result.ledger.audit(epoch).exact
        assert sorted(counts[epoch].values()) == [1] * result.ledger.num_samples

    # The first step started from the pretrained weights: its loss is transformers' on the same samples.
    samples = build_samples(cfg.data, cfg.model, seed=cfg.seed)
    inputs, targets = samples.pieces_batch(p for pieces in result.committed[0].values() for p in pieces)
    with torch.no_grad():
        first = F.cross_entropy(pretrained(inputs).logits.flatten(0, 1), targets.flatten())
    assert result.metrics[0].committed and result.metrics[0].loss == pytest.approx(float(first), rel=1e-5)

    # The export: event, RunResult, a directory transformers loads as is, with the trained weights.
    exported = [e for e in result.events if e["kind"] == "exported"]
    assert [(e["step"], e["path"]) for e in exported] == [(cfg.steps, str(tmp_path / "export" / "final"))]
    assert result.export_path == str(tmp_path / "export" / "final")
    files = {p.name for p in Path(result.export_path).iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= files
    loaded = AutoModelForCausalLM.from_pretrained(result.export_path)
    loaded.train(False)
    assert AutoTokenizer.from_pretrained(result.export_path).eos_token == "<|endoftext|>"
    trained = {k.replace(WRAPPER, ""): v for k, v in full_parameters(fingerprints[survivor]).items()}
    reference = AutoModelForCausalLM.from_pretrained(str(tmp_path / "llama"))
    reference.train(False)
    reference.load_state_dict(trained, strict=False)
    assert not torch.equal(trained["model.embed_tokens.weight"], pretrained.model.embed_tokens.weight)
    trained["lm_head.weight"] = trained["model.embed_tokens.weight"]  # tied: one parameter, listed once
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, trained[name]), name
    with torch.no_grad():
        assert torch.equal(loaded(inputs).logits, reference(inputs).logits)


def test_python_entrypoint_model_trains_and_checkpoints(user_pods: LocalCluster, tmp_path: Path) -> None:
    scale = 2.0
    cfg = TrainerConfig.model_validate(
        {
            "model": {
                "source": "python",
                "python": {"entrypoint": "elastrain_user_model:build", "kwargs": {"dim": 32, "scale": scale}},
                "seqLen": 16,
                "vocabSize": 64,
                "activationCheckpointing": "full",
            },
            "data": {"syntheticTokens": 1024, "numShards": 6},
            "steps": 6,
            "globalBatchSize": 8,
            "lrSchedule": {"warmupSteps": 2},
            "optimizer": {"lr": 0.003},
            "seed": 7,
        }
    )
    driver = Driver(
        cfg,
        fast_options(
            checkpoint_dir=str(tmp_path / "ckpt"),
            checkpoint_interval=3,
            export_dir=str(tmp_path / "out"),
            start_groups=2,
        ),
    )
    try:
        result = driver.run()
        fingerprints = driver.fingerprints()
    finally:
        driver.shutdown()
    events = "\n".join(map(str, result.events))
    assert result.step == cfg.steps, events
    committed = [m for m in result.metrics if m.committed]
    # The user's loss (kwargs scale 2) on small initial logits: about 2 ln(vocab) per token.
    assert committed[0].loss == pytest.approx(scale * math.log(64), rel=0.05), events
    # Groups built on meta and initialised from the seed start (and stay) bit-identical.
    assert len(fingerprints) == 2, events
    first, second = fingerprints.values()
    assert_bit_identical(first, second)
    store = CheckpointStore(tmp_path / "ckpt")
    assert store.steps()[-1] == cfg.steps
    from torch.distributed.checkpoint.filesystem import FileSystemReader

    keys = set(FileSystemReader(str(store.step_dir(cfg.steps))).read_metadata().state_dict_metadata)
    model_keys = {k.removeprefix("model.") for k in keys if k.startswith("model.")}
    assert {"embed.weight", "head.weight", "layers.0.up.weight", "layers.1.down.bias"} <= model_keys
    # Without a Hugging Face architecture the export is elastrain's format (documented in docs/models.md).
    assert result.export_path is not None
    assert {p.name for p in Path(result.export_path).iterdir()} == {"model.safetensors", "elastrain_model.json"}
