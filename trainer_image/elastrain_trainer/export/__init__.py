"""Exports of the trained model: Hugging Face model directories (safetensors) the ecosystem loads as they are."""

from elastrain_trainer.export.hf_writer import EXPORT_NAME, export_model

__all__ = ["EXPORT_NAME", "export_model"]
