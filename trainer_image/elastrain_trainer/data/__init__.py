"""Training data: token sequences addressed by sample index (synthetic or a memory-mapped file)."""

from elastrain_trainer.data.tokens import TokenSamples, build_samples, split_samples

__all__ = ["TokenSamples", "build_samples", "split_samples"]
