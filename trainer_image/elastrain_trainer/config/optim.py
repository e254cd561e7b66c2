"""The optimizer: which update rule and its hyperparameters."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from elastrain_trainer.config.base import ConfigModel, Rule

OptimizerName = Literal["adamw", "adam", "lamb", "sgd", "adagrad", "rmsprop"]

#: Optimizers that keep per-parameter statistics of squared gradients.
ADAPTIVE_OPTIMIZERS: tuple[OptimizerName, ...] = ("adamw", "adam", "lamb", "adagrad", "rmsprop")

Beta = Annotated[float, Field(ge=0.0, lt=1.0)]


class OptimizerConfig(ConfigModel):
    """Optimizer and its hyperparameters; each field says which optimizers read it."""

    name: OptimizerName = "adamw"
    """Update rule: adamw (decoupled weight decay), adam, lamb (layer-wise trust ratio, for large batches),
    sgd (with momentum), adagrad or rmsprop."""
    lr: float = Field(3e-4, gt=0.0, le=10.0)
    """Peak learning rate; the lrSchedule scales it every step."""
    betas: list[Beta] = Field([0.9, 0.95], min_length=2, max_length=2)
    """Decay rates of the first and second moment estimates (adamw, adam, lamb)."""
    weight_decay: float = Field(0.01, ge=0.0, le=1.0)
    """Weight decay coefficient (decoupled for adamw and lamb, L2 for the others)."""
    eps: float = Field(1e-8, gt=0.0, le=1.0)
    """Term added to denominators for numerical stability (adamw, adam, lamb, adagrad, rmsprop)."""
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    """Momentum factor (sgd, rmsprop)."""
    nesterov: bool = False
    """Use Nesterov momentum (sgd with momentum > 0 only)."""

    rules = (
        Rule(
            cel="!self.nesterov || (self.name == 'sgd' && self.momentum > 0.0)",
            holds=lambda o: not o.nesterov or (o.name == "sgd" and o.momentum > 0.0),
            field="nesterov",
            message="nesterov needs name: sgd with momentum > 0; set nesterov: false or use sgd with momentum",
            shows=("name", "momentum"),
        ),
    )
