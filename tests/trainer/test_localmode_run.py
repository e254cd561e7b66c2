"""``elastrain train``: a whole local run in which a pod (a Ray node) is removed and another added."""

from __future__ import annotations

import json
from pathlib import Path

from elastrain_trainer.cli import main


def test_cli_survives_a_lost_pod_and_grows_back(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(
        "kind: TrainingJob\n"
        "metadata: {name: local}\n"
        "spec:\n"
        "  replicas: 2\n"
        "  acceleratorsPerWorker: 2\n"
        "  trainer:\n"
        "    model: {vocabSize: 64, numLayers: 2, numHeads: 2, dim: 32, seqLen: 16}\n"
        "    data: {syntheticTokens: 4096, numShards: 16}\n"
        "    steps: 150\n"
        "    globalBatchSize: 8\n"
        "    lrSchedule: {warmupSteps: 2}\n"
    )
    out = tmp_path / "metrics.json"
    args = ["train", str(job), "--kill-pod-at", "10", "--add-pod-at", "12", "--step-delay", "0.25"]
    curve = tmp_path / "curve.png"
    code = main([*args, "--metrics-out", str(out), "--curve-out", str(curve)])
    assert code == 0
    assert curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the loss curve with its resize markers
    report = json.loads(out.read_text())
    events = report["events"]
    kinds = [e["kind"] for e in events]
    assert "pod_removed" in kinds and "pod_added" in kinds
    removed = next(e["node"] for e in events if e["kind"] == "pod_removed")
    lost = [e for e in events if e["kind"] == "group_lost"]
    assert lost and all(e["step"] >= 10 for e in lost)
    assert "restored" not in kinds and "restart_from_scratch" not in kinds
    first_nodes = {e["node"] for e in events if e["kind"] == "group_started" and e["step"] == 0}
    late = [e for e in events if e["kind"] == "group_started" and e["node"] not in first_nodes | {removed}]
    assert late, "no group was started on the added pod"
    healed = [e for e in events if e["kind"] == "group_healed" and e["group"] in {g["group"] for g in late}]
    assert healed, "the added pod's group never joined"
    committed = [m for m in report["metrics"] if m["committed"]]
    assert [m["step"] for m in committed][-1] == 150
    assert {m["groups"] for m in committed} >= {1, 2}
