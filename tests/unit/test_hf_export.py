"""The export writer (export/hf_writer.py) in one process, without a process group (DCP's non-distributed save).

The sharded case (every rank writing its slices at 2 and 4 ranks) runs in
tests/trainer/test_hf_pretrained_load.py and through the driver in tests/trainer/test_real_models_driver.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.export import EXPORT_NAME, export_model
from elastrain_trainer.export.hf_writer import plan_files
from elastrain_trainer.models import build_built_model, materialize

GPT2 = {"model_type": "gpt2", "vocab_size": 96, "n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 32}


def test_a_huggingface_export_is_one_file_that_from_pretrained_loads_with_equal_logits(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    cfg = TrainerConfig.model_validate(
        {"model": {"source": "huggingface", "seqLen": 16, "vocabSize": 96, "huggingface": {"config": GPT2}}}
    )
    built = build_built_model(cfg)
    materialize(built, seed=4)
    (tmp_path / "out" / f"{EXPORT_NAME}.tmp").mkdir(parents=True)  # a crashed export's leftovers are replaced
    path = export_model(built, str(tmp_path / "out"), rank=0, cfg=cfg)
    assert path == str(tmp_path / "out" / EXPORT_NAME)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [EXPORT_NAME]
    assert {p.name for p in Path(path).iterdir()} == {"config.json", "model.safetensors"}
    with safe_open(str(Path(path) / "model.safetensors"), framework="pt") as f:
        names = set(f.keys())
    assert "lm_head.weight" not in names and "transformer.wte.weight" in names  # tied: written once
    loaded = AutoModelForCausalLM.from_pretrained(path)
    loaded.train(False)
    built.module.train(False)
    tokens = torch.randint(0, 96, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(tokens).logits, built.logits(tokens))
    assert json.loads((Path(path) / "config.json").read_text())["use_cache"] is True


def test_a_builtin_export_is_elastrains_format(tmp_path: Path) -> None:
    cfg = TrainerConfig.model_validate({"model": {"dim": 32, "numHeads": 2, "numLayers": 2, "vocabSize": 64}})
    built = build_built_model(cfg)
    path = export_model(built, str(tmp_path), rank=0, cfg=cfg)
    assert path is not None
    assert {p.name for p in Path(path).iterdir()} == {"model.safetensors", "elastrain_model.json"}
    manifest: dict[str, Any] = json.loads((Path(path) / "elastrain_model.json").read_text())
    assert manifest["source"] == "builtin" and manifest["model"]["dim"] == 32
    with safe_open(str(Path(path) / "model.safetensors"), framework="pt") as f:
        written = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a mapping)
    expected = {k: v for k, v in built.module.state_dict().items() if k != "head.weight"}  # tied to embed
    assert sorted(written) == sorted(expected)
    for name, tensor in expected.items():
        assert torch.equal(written[name], tensor), name


def test_plan_files_packs_tensors_in_order_under_the_limit() -> None:
    state = {"a": torch.zeros(10), "b": torch.zeros(20), "c": torch.zeros(5), "d": torch.zeros(100)}
    assert plan_files(state, 1000) == {"a": 1, "b": 1, "c": 1, "d": 1}
    assert plan_files(state, 120) == {"a": 1, "b": 1, "c": 2, "d": 3}  # 40 + 80 bytes fill the first file
    assert plan_files(state, 10) == {"a": 1, "b": 2, "c": 3, "d": 4}  # a tensor larger than the limit: alone


def test_a_large_export_is_several_files_with_an_index_that_from_pretrained_loads(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    cfg = TrainerConfig.model_validate(
        {"model": {"source": "huggingface", "seqLen": 16, "vocabSize": 96, "huggingface": {"config": GPT2}}}
    )
    built = build_built_model(cfg)
    materialize(built, seed=4)
    path = export_model(built, str(tmp_path), rank=0, cfg=cfg, max_file_bytes=50_000)
    assert path is not None
    files = sorted(p.name for p in Path(path).glob("*.safetensors"))
    assert len(files) >= 3 and files[0] == f"model-00001-of-{len(files):05d}.safetensors", files
    index = json.loads((Path(path) / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(files)
    loaded = AutoModelForCausalLM.from_pretrained(path)
    loaded.train(False)
    built.module.train(False)
    tokens = torch.randint(0, 96, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(tokens).logits, built.logits(tokens))
