"""Tiny random Hugging Face models the tests build and save themselves (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import torch


def save_tiny_llama(
    directory: Path, *, vocab_size: int, tie_word_embeddings: bool = True, max_positions: int = 64, seed: int = 0
) -> torch.nn.Module:
    """A 2-layer Llama of width 64 (grouped-query attention) with random weights from ``seed``, saved with
    ``save_pretrained`` (config.json + model.safetensors) into ``directory``; returned in eval mode."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        tie_word_embeddings=tie_word_embeddings,
    )
    model = LlamaForCausalLM(config)
    model.train(False)
    model.save_pretrained(str(directory))
    module: torch.nn.Module = model
    return module
