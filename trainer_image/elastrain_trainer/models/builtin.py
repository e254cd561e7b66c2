"""Source ``builtin``: elastrain's GPT (:mod:`.gpt`), built whole on the CPU from the seed, as always."""

from __future__ import annotations

from elastrain_trainer.config import ModelConfig
from elastrain_trainer.models.built import BuiltModel
from elastrain_trainer.models.gpt import GPT, build_model


def build_builtin(cfg: ModelConfig, *, seed: int) -> BuiltModel:
    model: GPT = build_model(cfg, seed=seed)
    return BuiltModel(module=model, blocks=list(model.blocks), vocab_size=cfg.vocab_size)
