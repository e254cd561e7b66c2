"""The model zoo: plain PyTorch modules that know nothing about distribution."""

from elastrain_trainer.models.gpt import GPT, Block, build_model, count_parameters

__all__ = ["GPT", "Block", "build_model", "count_parameters"]
