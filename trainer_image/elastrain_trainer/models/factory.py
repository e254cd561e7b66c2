"""Pick the model source the config names and build its :class:`~elastrain_trainer.models.built.BuiltModel`."""

from __future__ import annotations

from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.models.built import BuiltModel


def build_built_model(cfg: TrainerConfig) -> BuiltModel:
    """The job's model, unsharded: whole on the CPU (builtin) or on the meta device (huggingface, python)."""
    model = cfg.model
    if model.source == "huggingface":
        from elastrain_trainer.models.huggingface import build_huggingface

        text = cfg.data.text
        return build_huggingface(model, tokenizer_dir=text.tokenizer if text is not None else None)
    if model.source == "python":
        from elastrain_trainer.models.python_source import build_python

        return build_python(model)
    from elastrain_trainer.models.builtin import build_builtin

    return build_builtin(model, seed=cfg.seed)
