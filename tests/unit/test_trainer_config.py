"""The trainer's config model: defaults, bounds, rules, camelCase form, no heavy imports."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from elastrain_trainer.config import (
    CompressionConfig,
    ModelConfig,
    OptimizerConfig,
    PrecisionConfig,
    TrainerConfig,
)

pytestmark = pytest.mark.unit


def test_defaults_are_a_tiny_cpu_friendly_job() -> None:
    config = TrainerConfig()
    assert (config.model.num_layers, config.model.dim, config.model.num_heads) == (2, 64, 4)
    assert config.data.source == "synthetic" and config.data.path is None
    assert config.optimizer.name == "adamw" and config.optimizer.betas == [0.9, 0.95]
    assert config.lr_schedule.name == "warmup_cosine"
    assert config.lr_schedule.warmup_steps <= config.steps
    assert config.precision.dtype == "fp32" and config.precision.master_weights
    assert config.parallelism.strategy == "fsdp" and config.parallelism.shard_size is None
    assert config.compression.codec == "none" and not config.compression.dynamic.enabled


def test_serialized_form_is_camel_case_and_round_trips() -> None:
    config = TrainerConfig.model_validate(
        {"globalBatchSize": 32, "lrSchedule": {"name": "polynomial", "power": 2}, "overlap": {"bucketSizeMB": 8}}
    )
    dumped = config.model_dump(mode="json")
    assert dumped["globalBatchSize"] == 32
    assert dumped["lrSchedule"]["power"] == 2.0
    assert dumped["overlap"]["bucketSizeMB"] == 8.0
    assert "global_batch_size" not in dumped
    assert TrainerConfig.model_validate(dumped) == config


def test_python_names_work_in_code() -> None:
    assert TrainerConfig(global_batch_size=8, steps=10).global_batch_size == 8


def test_models_are_frozen() -> None:
    with pytest.raises(ValidationError, match="frozen"):
        TrainerConfig().steps = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("model", "data", "expected"),
    [
        (ModelConfig, {"dim": 100, "numHeads": 3}, "dim must be a multiple of numHeads"),
        (OptimizerConfig, {"name": "sgd", "momentum": 0.0, "nesterov": True}, "nesterov needs name: sgd"),
        (PrecisionConfig, {"dtype": "fp16", "lossScaling": {"mode": "none"}}, "underflow without loss scaling"),
        (CompressionConfig, {"codec": "fp16", "dynamic": {"enabled": True}}, "needs a tunable codec"),
        (TrainerConfig, {"steps": 5}, "lrSchedule.warmupSteps must not exceed steps"),
        (
            TrainerConfig,
            {"precision": {"dtype": "fp16", "masterWeights": False}, "optimizer": {"name": "rmsprop"}},
            "squared-gradient state",
        ),
        (ModelConfig, {"numLayers": 0}, "greater than or equal to 1"),
        (OptimizerConfig, {"name": "adafactor"}, "'adamw', 'adam', 'lamb', 'sgd', 'adagrad' or 'rmsprop'"),
    ],
    ids=["heads", "nesterov", "fp16-loss-scaling", "dynamic-codec", "warmup", "fp16-adaptive", "layers", "enum"],
)
def test_invalid_configs_are_rejected(model: type, data: dict[str, object], expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        model.model_validate(data)  # type: ignore[attr-defined]


def test_valid_combinations_are_accepted() -> None:
    TrainerConfig.model_validate(
        {
            "precision": {"dtype": "fp16", "masterWeights": False},
            "optimizer": {"name": "sgd", "nesterov": True},
            "compression": {"codec": "powersgd", "dynamic": {"enabled": True, "minRank": 2, "maxRank": 8}},
            "data": {"source": "file", "path": "/data/tokens.bin"},
        }
    )


def test_config_imports_neither_torch_nor_ray() -> None:
    code = (
        "import sys, elastrain_trainer.config as c; c.TrainerConfig();"
        "heavy = {'torch', 'ray', 'torchft'} & set(sys.modules); assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
