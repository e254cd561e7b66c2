"""The one shape every model source returns: a module, its repeated blocks, a loss and what export needs.

Everything downstream (parallelism, checkpoints, live healing, compression, export) sees a
:class:`BuiltModel`, never a model class. A source builds its module either whole on the CPU (the
built-in GPT) or on the meta device (Hugging Face and most user models); a meta model is sharded
first and materialised shard by shard (:func:`elastrain_trainer.models.materialize.materialize`),
so no rank ever holds the whole model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

#: ``loss(logits, targets)`` -> the **sum** of the per-token losses (the step scales it to a mean).
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: ``forward(module, tokens)`` -> logits (batch, seq, vocab).
ForwardFn = Callable[[nn.Module, torch.Tensor], torch.Tensor]
#: ``init(submodule)``: fill one submodule's own parameters and buffers in place (called for every submodule,
#: innermost first, each under its own seed, on full-size tensors; see :mod:`.materialize`).
InitFn = Callable[[nn.Module], None]


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy summed over tokens (targets are the inputs shifted by one, as the data yields them)."""
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="sum")


def call_module(module: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """The default forward: ``module(tokens)`` returns the logits."""
    logits: torch.Tensor = module(tokens)
    return logits


@dataclass(frozen=True, kw_only=True)
class HFExport:
    """What writing a Hugging Face model directory needs besides the weights."""

    config: Any
    """The ``transformers.PretrainedConfig`` the module was built from (written as config.json)."""
    tokenizer_dir: str | None = None
    """A directory whose tokenizer files are copied next to the weights (None: none known)."""


@dataclass(frozen=True, kw_only=True)
class BuiltModel:
    """A model as parallelism and checkpoints see it."""

    module: nn.Module
    blocks: list[nn.Module]
    """The repeated blocks, in order: each is one FSDP unit and one activation-checkpointing unit."""
    vocab_size: int
    loss: LossFn = next_token_loss
    forward: ForwardFn = call_module
    init: InitFn | None = None
    """How to initialise each submodule once materialised; None: built on a real device, already initialised."""
    pretrained: str | None = None
    """A directory of ``*.safetensors`` loaded into the shards after materialising (None: keep the init)."""
    export: HFExport | None = None
    """How to write a Hugging Face model directory (None: the source has no HF architecture)."""

    @property
    def on_meta(self) -> bool:
        """True when the parameters have no storage yet (built on the meta device)."""
        return any(p.is_meta for p in self.module.parameters())

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.forward(self.module, tokens)
