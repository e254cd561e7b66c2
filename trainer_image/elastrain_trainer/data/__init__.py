"""Training data: token sequences addressed by sample index (synthetic, token files, prepared shards, text).

``build_samples`` and friends (data/tokens.py, which needs torch) load on first use, so the torch-free
parts (data prepare, text files, tokenizers) start quickly in ``elastrain data prepare``'s workers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from elastrain_trainer.data.tokens import TokenSamples, build_samples, split_samples

__all__ = ["TokenSamples", "build_samples", "split_samples"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from elastrain_trainer.data import tokens

        return getattr(tokens, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
