"""The decoder and activation checkpointing, in one process (no process group needed)."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F  # noqa: N812

from elastrain_trainer.config import ModelConfig
from elastrain_trainer.models import GPT, build_model, count_parameters
from elastrain_trainer.parallel import apply_ac


def test_about_1b_parameters_for_the_documented_sizes() -> None:
    cfg = ModelConfig(num_layers=24, dim=2048, num_heads=16, vocab_size=50304, seq_len=2048)
    with torch.device("meta"):
        model = GPT(cfg)
    # 24 blocks x 12 dim^2 (qkv, proj, 4x MLP) + tied embedding.
    assert count_parameters(model) == pytest.approx(24 * 12 * 2048**2 + 50304 * 2048, rel=0.001)
    assert 0.9e9 < count_parameters(model) < 1.4e9


def test_same_seed_same_parameters_and_tied_head() -> None:
    cfg = ModelConfig()
    a, b = build_model(cfg, seed=3), build_model(cfg, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert a.head.weight is a.embed.weight
    assert not torch.equal(a.embed.weight, build_model(cfg, seed=4).embed.weight)


def test_attention_is_causal() -> None:
    model = build_model(ModelConfig(seq_len=16), seed=0).eval()
    tokens = torch.randint(0, 256, (1, 16))
    changed = tokens.clone()
    changed[0, 10:] = (changed[0, 10:] + 1) % 256
    with torch.no_grad():
        assert torch.allclose(model(tokens)[0, :10], model(changed)[0, :10])
        assert not torch.allclose(model(tokens)[0, 10:], model(changed)[0, 10:])


@pytest.mark.parametrize("mode", ["full", "selective"])
def test_activation_checkpointing_gives_the_same_gradients(mode: str) -> None:
    cfg = ModelConfig(seq_len=16)
    tokens = torch.randint(0, 256, (2, 17), generator=torch.Generator().manual_seed(0))
    grads = []
    for ac in ("none", mode):
        model = build_model(cfg, seed=1)
        apply_ac(model, ac)
        F.cross_entropy(model(tokens[:, :-1]).flatten(0, 1), tokens[:, 1:].flatten()).backward()
        grads.append([p.grad for p in model.parameters()])
    wrapped = build_model(cfg, seed=1)
    apply_ac(wrapped, mode)
    assert "checkpoint" in type(wrapped.blocks[0] if mode == "full" else wrapped.blocks[0].attn).__name__.lower()
    for plain, recomputed in zip(*grads, strict=True):
        torch.testing.assert_close(plain, recomputed, rtol=0, atol=0)
