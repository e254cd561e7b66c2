"""The trainer's whole configuration: the `trainer` section of a TrainingJob and of `elastrain train FILE`."""

from __future__ import annotations

from pydantic import Field

from elastrain_trainer.config.base import ConfigModel, Rule
from elastrain_trainer.config.compression import CompressionConfig
from elastrain_trainer.config.data import DataConfig
from elastrain_trainer.config.model import ModelConfig
from elastrain_trainer.config.optim import ADAPTIVE_OPTIMIZERS, OptimizerConfig
from elastrain_trainer.config.overlap import OverlapConfig
from elastrain_trainer.config.parallelism import ParallelismConfig
from elastrain_trainer.config.precision import PrecisionConfig
from elastrain_trainer.config.schedule import LrScheduleConfig


class TrainerConfig(ConfigModel):
    """What to train and how: model, data, optimizer, schedule, precision, parallelism, compression.

    The global batch size stays constant when worker pods come and go; each replica group's share
    of it changes instead, so the loss curve does not depend on the number of workers.
    """

    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    lr_schedule: LrScheduleConfig = LrScheduleConfig()
    precision: PrecisionConfig = PrecisionConfig()
    parallelism: ParallelismConfig = ParallelismConfig()
    compression: CompressionConfig = CompressionConfig()
    overlap: OverlapConfig = OverlapConfig()
    steps: int = Field(100, ge=1, le=1000000000)
    """Total optimizer steps."""
    global_batch_size: int = Field(64, ge=1, le=16777216)
    """Sequences per optimizer step across all workers; constant when workers come and go."""
    grad_accumulation_steps: int = Field(1, ge=1, le=1024)
    """Micro-batches each process splits its share of a step into (less activation memory, same result)."""
    max_grad_norm: float = Field(1.0, ge=0.0, le=1000000.0)
    """Clip the global gradient norm to this value; 0 disables clipping."""
    seed: int = Field(0, ge=0, le=4294967295)
    """Seed of parameter initialisation, synthetic data and shard order."""
    eval_interval_steps: int = Field(0, ge=0, le=1000000000)
    """Evaluate every this many steps; 0 disables evaluation."""

    rules = (
        Rule(
            cel="self.lrSchedule.warmupSteps <= self.steps",
            holds=lambda t: t.lr_schedule.warmup_steps <= t.steps,
            field="lrSchedule.warmupSteps",
            message="lrSchedule.warmupSteps must not exceed steps; lower warmupSteps or raise steps",
            shows=("lrSchedule.warmupSteps", "steps"),
        ),
        Rule(
            cel="self.evalIntervalSteps <= self.steps",
            holds=lambda t: t.eval_interval_steps <= t.steps,
            field="evalIntervalSteps",
            message="evalIntervalSteps must not exceed steps (0 disables evaluation); lower it or raise steps",
            shows=("evalIntervalSteps", "steps"),
        ),
        Rule(
            cel="!(self.precision.dtype == 'fp16' && !self.precision.masterWeights"
            " && self.optimizer.name in ['adamw', 'adam', 'lamb', 'adagrad', 'rmsprop'])",
            holds=lambda t: (
                not (
                    t.precision.dtype == "fp16"
                    and not t.precision.master_weights
                    and t.optimizer.name in ADAPTIVE_OPTIMIZERS
                )
            ),
            field="optimizer.name",
            message="this optimizer keeps squared-gradient state, which underflows and overflows fp16 "
            "(eps rounds to 0) when precision.masterWeights is false; set precision.masterWeights: true, "
            "use precision.dtype: bf16, or use optimizer sgd",
            shows=("optimizer.name", "precision.dtype", "precision.masterWeights"),
        ),
    )
