"""The model sources: plain PyTorch modules that know nothing about distribution, as one BuiltModel shape."""

from elastrain_trainer.models.built import BuiltModel, ForwardFn, HFExport, LossFn, call_module, next_token_loss
from elastrain_trainer.models.factory import build_built_model
from elastrain_trainer.models.gpt import GPT, Block, build_model, count_parameters
from elastrain_trainer.models.materialize import materialize

__all__ = [
    "GPT",
    "Block",
    "BuiltModel",
    "ForwardFn",
    "HFExport",
    "LossFn",
    "build_built_model",
    "build_model",
    "call_module",
    "count_parameters",
    "materialize",
    "next_token_loss",
]
