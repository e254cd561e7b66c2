"""`make demo`, with assertions: a real TrainingJob trains through a node loss on the local cluster.

Everything is real: the control plane, the operator process, the pods run by the development pod
runner as local processes (Ray head and nodes, torchft groups, gloo), the node failure (the node
leaves KWOK's management and its processes die at once).
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import yaml

from elastrain_dev.cluster import LocalCluster
from elastrain_dev.demo import DEMO_JOB, run
from elastrain_dev.podrunner import tagged_processes


def test_demo_trains_through_a_node_loss_and_loses_no_sample(cluster: LocalCluster, tmp_path: Path) -> None:
    namespace = f"e2e-demo-{uuid.uuid4().hex[:5]}"
    spec = yaml.safe_load(DEMO_JOB.read_text())["spec"]
    total, batch = spec["trainer"]["steps"], spec["trainer"]["globalBatchSize"]

    result = run(cluster, namespace=namespace, output=tmp_path)

    # The job succeeded, and kubectl showed its progress moving up to the last step.
    assert result.status["phase"] == "Succeeded", result.status
    steps = [p.get("step", 0) for p in result.progress]
    assert steps == sorted(steps), "status.progress.step went backwards"
    assert len(set(steps)) >= 5, steps
    assert steps[-1] == total, result.progress[-1]
    assert result.status["progress"]["lastCheckpointStep"] > 0

    # One shrink (the lost node) and then a grow (the node added), in status and in Events. The job
    # may also have started training with 2 of its 3 workers (minReplicas) and grown to 3 before.
    resizes = [(r["from"], r["to"]) for r in result.status["resizes"]]
    assert resizes.count((3, 2)) == 1, result.status["resizes"]
    assert (2, 3) in resizes[resizes.index((3, 2)) + 1 :], resizes
    reasons = {e["reason"] for e in result.events}
    lost = [e["message"] for e in result.events if e["reason"] == "WorkerLost"]
    assert any(result.lost_pod in m and result.failed_node in m for m in lost), lost
    assert "ScaleUpBlocked" in reasons or "Unschedulable" in reasons, reasons
    assert "JobSucceeded" in reasons, reasons

    # The trainer kept going without the lost group, and the replacement healed from a live peer.
    kinds = [e["kind"] for e in result.summary["events"]]
    assert kinds.count("group_lost") >= 1 and kinds.count("group_healed") >= 1, kinds
    assert "restored" not in kinds and "restart_from_scratch" not in kinds, kinds  # nothing rolled back
    # The head's log told it as it happened (what `kubectl logs` on the head shows), not only the summary.
    head_log = "\n".join(
        p.read_text(errors="replace") for p in sorted((tmp_path / "pods" / namespace).glob("*-head*/container.log"))
    )
    assert re.search(r"group lost: group\d+ (during|at) step \d+: ", head_log), head_log[-4000:]
    assert re.search(r"group healed: group\d+ from a live peer in [\d.]+ s at step \d+", head_log), head_log[-4000:]
    groups = [m["groups"] for m in result.summary["metrics"]]
    assert 2 in groups and groups[-1] == 3, groups

    # The ledger audit: every committed step trained a full global batch, no sample twice, and every
    # epoch before the last one complete. The pieces recount (coverage) agrees with the ledger.
    audits = result.summary["audit"]
    assert sum(a["trained"] for a in audits) == total * batch, audits
    assert all(a["duplicated"] == 0 for a in audits), audits
    assert all(a["missing"] == 0 for a in audits[:-1]), audits
    coverage = {c["epoch"]: c for c in result.summary["coverage"]}
    for audit in audits:
        assert coverage[audit["epoch"]]["samples"] == audit["trained"], (audit, coverage)
        assert coverage[audit["epoch"]]["duplicated"] == 0, coverage

    # It learned, and the loss curve was drawn.
    metrics = result.summary["metrics"]
    assert metrics[-1]["loss"] < metrics[0]["loss"] * 0.8, (metrics[0]["loss"], metrics[-1]["loss"])
    assert result.curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Nothing left behind: no pods, no namespace, no process of any pod.
    leftover = cluster.kubectl("get", "pods", "-n", namespace, "-o", "json", check=False)
    assert leftover.returncode != 0 or json.loads(leftover.stdout)["items"] == [], leftover.stdout
    assert tagged_processes(lambda tag: tag.startswith(f"{namespace}/")) == []
