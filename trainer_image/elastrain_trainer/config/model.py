"""Sizes of the GPT-style decoder the trainer builds: from a tiny CPU test model up to about 1B parameters.

The model knows nothing about distribution; parallelism is applied to it by the trainer.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from elastrain_trainer.config.base import ConfigModel, Rule

ActivationCheckpointing = Literal["none", "selective", "full"]


class ModelConfig(ConfigModel):
    """Architecture of the GPT-style decoder (pre-norm transformer blocks, rotary positions, tied embeddings).

    The defaults are a tiny model that trains in seconds on a CPU. About 1B parameters:
    layers 24, dim 2048, heads 16, vocabSize 50304, seqLen 2048.
    """

    vocab_size: int = Field(256, ge=2, le=262144)
    """Number of distinct tokens; token ids in the data must be below it."""
    num_layers: int = Field(2, ge=1, le=128)
    """Number of transformer blocks."""
    num_heads: int = Field(4, ge=1, le=128)
    """Attention heads per block; must divide dim."""
    dim: int = Field(64, ge=8, le=16384)
    """Hidden size (model width); a multiple of numHeads."""
    mlp_ratio: float = Field(4.0, ge=1.0, le=16.0)
    """Width of each block's MLP as a multiple of dim."""
    seq_len: int = Field(128, ge=8, le=131072)
    """Tokens per training sequence (the context length)."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout probability on attention and MLP outputs; 0 disables dropout."""
    tie_embeddings: bool = True
    """Share the token embedding with the output projection."""
    activation_checkpointing: ActivationCheckpointing = "none"
    """Recompute activations in backward to save memory: none, selective (attention only) or full (every block)."""

    rules = (
        Rule(
            cel="self.dim % self.numHeads == 0",
            holds=lambda m: m.dim % m.num_heads == 0,
            field="numHeads",
            message="dim must be a multiple of numHeads (each head gets dim/numHeads channels); "
            "change numHeads to a divisor of dim",
            shows=("dim", "numHeads"),
        ),
    )
