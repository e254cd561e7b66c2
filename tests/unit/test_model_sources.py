"""The model sources' pure parts: block discovery, entrypoint parsing and checks, errors naming the field.

Hugging Face models are built on the meta device here (no weights, no process group): five
architectures from tiny configs the test writes, each must yield one block per decoder layer.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.errors import SpecError
from elastrain_trainer.models import build_built_model
from elastrain_trainer.models.blocks import find_blocks, replace_submodule
from elastrain_trainer.models.pretrained import tied_names
from elastrain_trainer.models.python_source import check_result, parse_entrypoint, resolve_entrypoint

TINY = {"vocab_size": 128, "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4}
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "llama": {**TINY, "num_hidden_layers": 3, "num_key_value_heads": 2},
    "qwen2": {**TINY, "num_hidden_layers": 2, "num_key_value_heads": 2},
    "qwen3": {**TINY, "num_hidden_layers": 2, "num_key_value_heads": 2, "head_dim": 8},
    "mistral": {**TINY, "num_hidden_layers": 2, "num_key_value_heads": 2},
    "gpt2": {"vocab_size": 128, "n_embd": 32, "n_layer": 3, "n_head": 4, "n_positions": 64},
}
BLOCK_CLASS = {
    "llama": "LlamaDecoderLayer",
    "qwen2": "Qwen2DecoderLayer",
    "qwen3": "Qwen3DecoderLayer",
    "mistral": "MistralDecoderLayer",
    "gpt2": "GPT2Block",
}


def hf_config(model: dict[str, Any], **extra: Any) -> TrainerConfig:
    return TrainerConfig.model_validate(
        {"model": {"source": "huggingface", "seqLen": 16, "vocabSize": 64, "huggingface": model, **extra}}
    )


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_huggingface_blocks_are_the_decoder_layers_on_meta(arch: str) -> None:
    fields = ARCHITECTURES[arch]
    built = build_built_model(hf_config({"config": {"model_type": arch, **fields}}))
    layers = int(fields.get("num_hidden_layers", fields.get("n_layer", 0)))
    assert [type(b).__name__ for b in built.blocks] == [BLOCK_CLASS[arch]] * layers
    assert built.on_meta and built.init is not None and built.pretrained is None
    assert built.vocab_size == 128
    assert built.export is not None and built.export.config.model_type == arch
    owned = list(built.module.modules())
    assert all(any(b is m for m in owned) for b in built.blocks)


def test_find_blocks_takes_the_outermost_match_in_order() -> None:
    class Inner(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(2, 2)

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = Inner()

    layers = [Layer(), Layer(), Layer()]
    root = nn.Sequential(nn.Linear(2, 2), nn.ModuleList(layers[:2]), layers[2])
    found = find_blocks(root, {"Layer", "Inner"})
    assert found == layers
    assert find_blocks(root, {"Missing"}) == []


def test_replace_submodule_swaps_in_place_and_refuses_strangers() -> None:
    old, new = nn.Linear(2, 2), nn.Identity()
    inner = nn.ModuleList([old])
    root = nn.Sequential(nn.Linear(2, 2), inner)
    replace_submodule(root, old, new)
    assert inner[0] is new
    with pytest.raises(ValueError, match="not a submodule"):
        replace_submodule(root, old, nn.Identity())


def test_tied_names_map_each_alias_to_the_first_name() -> None:
    root = nn.Module()
    root.embed = nn.Embedding(4, 2)
    root.head = nn.Linear(2, 4, bias=False)
    root.head.weight = root.embed.weight
    assert tied_names(root) == {"head.weight": "embed.weight"}


@pytest.mark.parametrize(
    ("entrypoint", "expected"),
    [("pkg.mod:build", ("pkg.mod", "build")), ("m:f", ("m", "f"))],
)
def test_parse_entrypoint(entrypoint: str, expected: tuple[str, str]) -> None:
    assert parse_entrypoint(entrypoint) == expected


@pytest.mark.parametrize("entrypoint", ["pkg.mod", "pkg.mod:", ":f", "pkg..mod:f", "pkg.mod:f-g"])
def test_parse_entrypoint_refuses_malformed(entrypoint: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_entrypoint(entrypoint)
    assert err.value.field == "spec.trainer.model.python.entrypoint"


def test_entrypoint_import_errors_name_the_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken_model_mod.py").write_text("import not_a_module_anywhere\n")
    (tmp_path / "fine_model_mod.py").write_text("def build(cfg):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for entrypoint, problem in [
        ("no_such_model_mod:build", "cannot be imported"),
        ("broken_model_mod:build", "ModuleNotFoundError"),
        ("fine_model_mod:missing", "has no function missing"),
    ]:
        with pytest.raises(SpecError, match=problem) as err:
            resolve_entrypoint(entrypoint)
        assert err.value.field == "spec.trainer.model.python.entrypoint"
        assert err.value.value == entrypoint
    assert callable(resolve_entrypoint("fine_model_mod:build"))
    cfg = TrainerConfig.model_validate(
        {"model": {"source": "python", "python": {"entrypoint": "fine_model_mod:build"}}}
    )
    with pytest.raises(SpecError, match="returned NoneType"):
        build_built_model(cfg)
    sys.modules.pop("fine_model_mod", None)
    sys.modules.pop("broken_model_mod", None)


def _model() -> nn.Sequential:
    return nn.Sequential(nn.Embedding(8, 4), nn.Linear(4, 4), nn.Linear(4, 8))


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda m: m, "returned Sequential"),
        (lambda m: (m,), "returned tuple"),
        (lambda m: ("x", [m[1]]), "first element is a str"),
        (lambda m: (m, []), "non-empty list of submodules"),
        (lambda m: (m, [nn.Linear(4, 4)]), "non-empty list of submodules"),
        (lambda m: (m, [m[1]], "loss"), "third element is not callable"),
    ],
)
def test_check_result_refuses_what_breaks_the_contract(make: Any, problem: str) -> None:
    with pytest.raises(SpecError, match=problem) as err:
        check_result(make(_model()), "m:f")
    assert err.value.field == "spec.trainer.model.python.entrypoint"


def test_check_result_accepts_module_blocks_and_optional_loss() -> None:
    model = _model()

    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return logits.sum()

    assert check_result((model, [model[1]]), "m:f")[1] == [model[1]]
    assert check_result((model, [model[1], model[2]], loss), "m:f")[2] is loss


def test_huggingface_config_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        build_built_model(hf_config({"config": {"hidden_size": 32}}))
    assert err.value.field == "spec.trainer.model.huggingface.config.model_type"
    with pytest.raises(SpecError, match=r"no config\.json") as err:
        build_built_model(hf_config({"path": str(tmp_path / "absent")}))
    assert err.value.field == "spec.trainer.model.huggingface.path"
    from transformers import LlamaConfig

    LlamaConfig(**ARCHITECTURES["llama"], max_position_embeddings=8).save_pretrained(str(tmp_path))
    with pytest.raises(SpecError, match=r"no \*\.safetensors") as err:
        build_built_model(hf_config({"path": str(tmp_path), "weights": True}))
    assert err.value.field == "spec.trainer.model.huggingface.path"
    with pytest.raises(SpecError, match="8 positions") as err:
        build_built_model(hf_config({"path": str(tmp_path)}))
    assert err.value.field == "spec.trainer.model.seqLen"
    with pytest.raises(SpecError, match="only 128 tokens") as err:
        build_built_model(hf_config({"config": {"model_type": "llama", **ARCHITECTURES["llama"]}}, vocabSize=200))
    assert err.value.field == "spec.trainer.model.vocabSize"


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "python-model"


def test_the_python_model_example_parses_and_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/python-model: the manifest is a valid TrainingJob and its entrypoint honours the contract."""
    import yaml

    from elastrain_operator.api import parse_trainingjob

    job = parse_trainingjob(yaml.safe_load((EXAMPLE / "trainingjob.yaml").read_text()))
    cfg = TrainerConfig.model_validate(job.spec.trainer.model_dump(mode="json", by_alias=True))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    built = build_built_model(cfg)
    assert built.on_meta and len(built.blocks) == 2
    from elastrain_trainer.models import materialize

    materialize(built, seed=cfg.seed)
    materialised = not built.on_meta
    assert materialised
    tokens = torch.randint(0, cfg.model.vocab_size, (2, cfg.model.seq_len))
    logits = built.logits(tokens)
    assert logits.shape == (2, cfg.model.seq_len, cfg.model.vocab_size)
    # Small initial weights: the loss per token is about ln(vocab) (the z-loss adds a little).
    per_token = float(built.loss(logits, tokens).detach()) / tokens.numel()
    assert per_token == pytest.approx(math.log(cfg.model.vocab_size), rel=0.05)
    sys.modules.pop("tiny_llama", None)
