"""Initialising a meta-built model (models/materialize.py) in one process: per-submodule seeds, ties, AC.

The world-size independence itself (1, 2 and 4 ranks give these very weights) is shown with real
processes in tests/trainer/test_hf_pretrained_load.py.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.models import BuiltModel, build_built_model, materialize
from elastrain_trainer.models.materialize import init_units, module_seed
from elastrain_trainer.parallel.apply import apply_ac

LLAMA = {"model_type": "llama", "vocab_size": 128, "hidden_size": 32, "intermediate_size": 64}
GPT2 = {"model_type": "gpt2", "vocab_size": 128, "n_embd": 32, "n_layer": 3, "n_head": 4, "n_positions": 64}


def materialized(config: dict[str, Any], *, seed: int = 5, ac: str = "none") -> BuiltModel:
    cfg = TrainerConfig.model_validate(
        {
            "model": {
                "source": "huggingface",
                "seqLen": 16,
                "vocabSize": 64,
                "huggingface": {"config": {**config, "num_attention_heads": 4}},
            }
        }
    )
    built = build_built_model(cfg)
    apply_ac(built, ac)
    materialize(built, seed=seed)
    return built


def state(built: BuiltModel) -> dict[str, torch.Tensor]:
    return {k.replace("_checkpoint_wrapped_module.", ""): v for k, v in built.module.state_dict().items()}


@pytest.mark.parametrize("config", [LLAMA, GPT2], ids=["llama", "gpt2"])
def test_init_is_a_function_of_the_seed_not_of_activation_checkpointing(config: dict[str, Any]) -> None:
    plain = state(materialized(config))
    for ac in ("full", "selective"):
        wrapped = state(materialized(config, ac=ac))
        assert sorted(wrapped) == sorted(plain)
        for name, tensor in plain.items():
            assert torch.equal(wrapped[name], tensor), (ac, name)
    other = state(materialized(config, seed=6))
    matrices = [n for n, t in plain.items() if t.dim() == 2]
    assert all(not torch.equal(other[n], plain[n]) for n in matrices)


def test_each_submodule_has_its_own_seed_and_the_architectures_scheme() -> None:
    weights = state(materialized(GPT2))
    # Same shape, different submodules: different draws.
    assert not torch.equal(weights["transformer.h.0.attn.c_attn.weight"], weights["transformer.h.1.attn.c_attn.weight"])
    # GPT-2's own scheme: output projections scaled by 1/sqrt(2 n_layer), biases zero, norms one.
    assert float(weights["transformer.h.0.attn.c_attn.weight"].std()) == pytest.approx(0.02, rel=0.1)
    assert float(weights["transformer.h.0.attn.c_proj.weight"].std()) == pytest.approx(0.02 / math.sqrt(6), rel=0.1)
    assert torch.equal(weights["transformer.h.0.attn.c_attn.bias"], torch.zeros(96))
    assert torch.equal(weights["transformer.ln_f.weight"], torch.ones(32))


def test_tied_weights_stay_tied_after_materializing_a_whole_module() -> None:
    built = materialized(GPT2)
    module: Any = built.module
    assert module.lm_head.weight is module.transformer.wte.weight


def test_units_are_blocks_then_the_rest_innermost_first() -> None:
    built = materialized(LLAMA)
    units = init_units(built.module, built.blocks)
    assert len(units) == len(built.blocks) + 1
    assert [name for name, _ in units[0]][-1] == "model.layers.0"
    rest = [name for name, _ in units[-1]]
    assert rest[-1] == "" and "model.embed_tokens" in rest and "lm_head" in rest
    assert not any(name.startswith("model.layers.") for name in rest)
    assert module_seed(5, "a") != module_seed(5, "b") and module_seed(5, "a") != module_seed(6, "a")


def test_with_pretrained_weights_only_the_buffers_are_initialised_and_the_load_fills_the_rest(tmp_path: Path) -> None:
    from tests.tinymodels import save_tiny_llama

    reference = save_tiny_llama(tmp_path / "llama", vocab_size=128)
    cfg = TrainerConfig.model_validate(
        {
            "model": {
                "source": "huggingface",
                "seqLen": 16,
                "vocabSize": 128,
                "huggingface": {"path": str(tmp_path / "llama"), "weights": True},
            }
        }
    )
    built = build_built_model(cfg)
    assert built.init is not None
    initialised: list[str] = []
    init = built.init

    def recording(module: nn.Module) -> None:
        initialised.append(type(module).__name__)
        init(module)

    materialize(dataclasses.replace(built, init=recording), seed=5)
    assert initialised == ["LlamaRotaryEmbedding"]  # the rotary tables: not in the files
    tokens = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(0))
    built.module.train(False)
    with torch.no_grad():
        assert torch.equal(built.logits(tokens), reference(tokens).logits)
