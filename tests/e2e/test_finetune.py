"""examples/finetune-llama.yaml through the operator on the local cluster: a pretrained Hugging Face
Llama fine-tuned on a jsonl corpus, through a node loss, exported as a model directory that
``transformers`` loads.

The example's PVCs become host paths (the pod runner runs pods as local processes): a tiny random
Llama saved with ``save_pretrained`` (safetensors), a tokenizer trained here on the shipped corpus,
and the corpus as jsonl. The rest is :func:`elastrain_dev.demo.run`, the same path as ``make demo``:
a node fails under a worker, the job keeps training on 2, grows back to 3 when a node is added.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import yaml
from tests.textdata import corpus_documents, train_tokenizer
from tests.tinymodels import save_tiny_llama

from elastrain_dev.cluster import REPO_ROOT, LocalCluster
from elastrain_dev.demo import run

EXAMPLE = REPO_ROOT / "examples" / "finetune-llama.yaml"


def _manifest(tmp_path: Path) -> Path:
    """The example with its PVC paths on the host, written next to the data."""
    model_dir = train_tokenizer(tmp_path / "llama")
    vocab = len(json.loads((model_dir / "tokenizer.json").read_text())["model"]["vocab"])
    save_tiny_llama(model_dir, vocab_size=vocab, tie_word_embeddings=False, max_positions=128)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    with (corpus / "part-0.jsonl").open("w") as out:
        for doc in corpus_documents():
            out.write(json.dumps({"text": doc}) + "\n")

    job: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    spec = job["spec"]
    spec["pod"] = {"labels": {"podrunner.elastrain.dev/run": "true"}}  # no PVCs: host paths
    spec["scheduling"] = {"nodeSelector": {"elastrain.dev/demo-pool": "true"}}
    spec["trainer"]["model"]["huggingface"]["path"] = str(model_dir)
    spec["trainer"]["data"]["text"]["paths"] = [f"{corpus}/*.jsonl"]
    spec["trainer"]["data"]["text"]["tokenizer"] = str(model_dir)
    spec["checkpoint"] = {k: v for k, v in spec["checkpoint"].items() if k != "pvc"}  # demo.run sets the uri
    spec["export"] = {"uri": f"file://{tmp_path / 'export'}"}
    path = tmp_path / "finetune-llama.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def test_a_pretrained_llama_fine_tunes_through_a_node_loss_and_exports(cluster: LocalCluster, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    manifest = _manifest(tmp_path)
    spec = yaml.safe_load(manifest.read_text())["spec"]
    total, batch = spec["trainer"]["steps"], spec["trainer"]["globalBatchSize"]

    result = run(cluster, namespace=f"e2e-finetune-{uuid.uuid4().hex[:5]}", manifest=manifest, output=tmp_path / "out")

    assert result.status["phase"] == "Succeeded", result.status
    resizes = [(r["from"], r["to"]) for r in result.status["resizes"]]
    assert resizes.count((3, 2)) == 1, resizes
    kinds = [e["kind"] for e in result.summary["events"]]
    assert kinds.count("group_lost") >= 1 and kinds.count("group_healed") >= 1, kinds
    assert "restored" not in kinds and "restart_from_scratch" not in kinds, kinds

    # Every committed step trained a full global batch of the corpus's samples, none twice.
    audits = result.summary["audit"]
    assert sum(a["trained"] for a in audits) == total * batch, audits
    assert all(a["duplicated"] == 0 for a in audits), audits
    assert all(a["missing"] == 0 for a in audits[:-1]), audits

    # The pretrained model learned the corpus.
    metrics = result.summary["metrics"]
    assert metrics[-1]["loss"] < metrics[0]["loss"] * 0.8, (metrics[0]["loss"], metrics[-1]["loss"])

    # status.export names a Hugging Face directory that transformers loads as it is, with the tokenizer.
    export = result.status["export"]
    assert export["step"] == total, export
    exported = Path(export["path"])
    assert exported.is_relative_to(tmp_path / "export"), export
    model = AutoModelForCausalLM.from_pretrained(str(exported))
    tokenizer = AutoTokenizer.from_pretrained(str(exported))
    ids = tokenizer(corpus_documents()[0], return_tensors="pt")["input_ids"][:, :64]
    with torch.no_grad():
        logits = model(ids).logits
    assert torch.isfinite(logits).all()
    loss = torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:])
    assert float(loss) < metrics[0]["loss"], (float(loss), metrics[0]["loss"])
