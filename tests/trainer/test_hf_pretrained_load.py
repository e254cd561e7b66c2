"""Pretrained safetensors load straight into the shards: 1, 2 and 4 ranks give the same logits as transformers.

A tiny Llama (2 layers, width 64, tied embeddings so ``lm_head`` is absent from the file) is
created and saved by the test; every world size builds it on meta, shards it, and reads only its
slices through DCP's Hugging Face reader. Each world size exports what it loaded (every rank writing
its slices through DCP's Hugging Face writer): the files hold the pretrained tensors bit for bit and
``from_pretrained`` loads them as they are. The same processes also build a Llama from an inline
config whose vocabulary and MLP width FSDP pads: its initialisation from the seed gives the same
weights at every world size (and with activation checkpointing as without), equal to a single
process's unsharded init.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tests.tinymodels import save_tiny_llama
from tests.trainer.hf_ranks import VOCAB, fixed_batch, random_init_config, spawn

from elastrain_trainer.models import build_built_model, materialize


def test_pretrained_weights_load_identically_into_one_two_and_four_ranks(tmp_path: Path) -> None:
    reference = save_tiny_llama(tmp_path / "llama", vocab_size=VOCAB)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "llama" / "model.safetensors"), framework="pt") as f:
        assert "lm_head.weight" not in set(f.keys())  # tied: filled through the embedding
    with torch.no_grad():
        expected = reference(fixed_batch()).logits
    results = {}
    for world in (1, 2, 4):
        out = tmp_path / f"logits-{world}.pt"
        spawn(world, tmp_path / "llama", out)
        results[world] = torch.load(str(out), weights_only=False)
    for world, got in results.items():
        # The sharded forward all-gathers the same full weights: the same arithmetic, bit for bit.
        assert torch.equal(got["logits"], expected), f"world {world}"
        # Each rank holds its shards only (FSDP pads dim 0, so a little more than total/world).
        assert sum(got["held"]) >= got["total"]
        assert max(got["held"]) <= got["total"] / world * 1.1 + 64 * world, (world, got["held"])

    # The exports: what was loaded, written back bit for bit, one file as save_pretrained writes it.
    from transformers import AutoModelForCausalLM

    with safe_open(str(tmp_path / "llama" / "model.safetensors"), framework="pt") as f:
        original = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a mapping)
    for world in results:
        final = tmp_path / f"export-{world}" / "final"
        assert {p.name for p in final.iterdir()} == {"config.json", "model.safetensors"}, world
        with safe_open(str(final / "model.safetensors"), framework="pt") as f:
            written = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        assert sorted(written) == sorted(original), world
        for name, tensor in original.items():
            assert torch.equal(written[name], tensor), (world, name)
        loaded = AutoModelForCausalLM.from_pretrained(str(final))
        loaded.train(False)
        with torch.no_grad():
            assert torch.equal(loaded(fixed_batch()).logits, expected), world

    # Random init (no weights; sizes FSDP pads at 2 and 4 ranks): the same weights at 1, 2 and 4 ranks
    # as in one unsharded process.
    cfg = random_init_config()
    built = build_built_model(cfg)
    materialize(built, seed=cfg.seed)
    unsharded = dict(built.module.state_dict())
    for world, got in results.items():
        initial = got["initial"]
        assert sorted(initial) == sorted(unsharded), world
        for name, tensor in unsharded.items():
            assert torch.equal(initial[name], tensor), (world, name)
    # It is the architecture's init (normal(0, initializer_range) matrices, unit norms, the head tied
    # to the embedding), each matrix from its own seed.
    layers = [unsharded[f"model.layers.{i}.self_attn.q_proj.weight"] for i in (0, 1)]
    assert not torch.equal(layers[0], layers[1])
    assert abs(float(layers[0].std()) - 0.02) < 0.002
    assert torch.equal(unsharded["model.norm.weight"], torch.ones(64))
    assert unsharded["model.embed_tokens.weight"].shape == (259, 64)
    assert torch.equal(unsharded["lm_head.weight"], unsharded["model.embed_tokens.weight"])
    # A different seed, different weights.
    other = build_built_model(cfg)
    materialize(other, seed=cfg.seed + 1)
    assert not torch.equal(
        other.module.state_dict()["model.embed_tokens.weight"], unsharded["model.embed_tokens.weight"]
    )
