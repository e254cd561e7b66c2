"""`kubectl scale tj --replicas 1` under a job training with 3 workers: the leavers go at a step boundary.

Everything is real: the control plane, the operator process, the pods run by the development pod
runner as local processes (Ray head and nodes, torchft groups, gloo). The operator holds the two
pods' deletion until the driver has let their groups go (``GET /progress?leave=``), so the driver sees
no lost group and no quorum it must abandon, and the ledger stays exact.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import yaml

from elastrain_dev.cluster import LocalCluster
from elastrain_dev.demo import DEMO_JOB
from elastrain_dev.scaledown import STEPS, run_scale_down


def test_scaling_down_lets_the_leaving_groups_go_at_a_step_boundary(cluster: LocalCluster, tmp_path: Path) -> None:
    namespace = f"e2e-scaledown-{uuid.uuid4().hex[:5]}"
    batch = yaml.safe_load(DEMO_JOB.read_text())["spec"]["trainer"]["globalBatchSize"]

    result = run_scale_down(cluster, namespace=namespace, output=tmp_path, to=1)

    assert result.status["phase"] == "Succeeded", result.status
    # The resize is recorded as the user's: down to 1, reason ScaledDown, never WorkerLost.
    downs = [r for r in result.status["resizes"] if r["to"] < r["from"]]
    assert downs and downs[-1]["to"] == 1, result.status["resizes"]
    assert {r["reason"] for r in downs} == {"ScaledDown"}, result.status["resizes"]
    reasons = {e["reason"] for e in result.events}
    assert "WorkerLost" not in reasons and "LeaveTimedOut" not in reasons, reasons

    # The driver let two groups go at a step boundary: none lost (no ActorDiedError), no quorum abandoned.
    events = result.summary["events"]
    kinds = [e["kind"] for e in events]
    assert kinds.count("group_left") == 2, kinds
    assert "group_lost" not in kinds and "quorum_abandoned" not in kinds and "train_timeout" not in kinds, kinds
    assert "restored" not in kinds and "restart_from_scratch" not in kinds, kinds
    [settled] = [e for e in events if e["kind"] == "leave_settled"]  # the survivors' pause, in the run summary
    assert len(settled["groups"]) == 2 and settled["pause_seconds"] > 0, settled
    groups = [m["groups"] for m in result.summary["metrics"]]
    assert 3 in groups and groups[-1] == 1, groups

    # Exactly once across the leave: a full global batch every step, no sample twice.
    audits = result.summary["audit"]
    assert sum(a["trained"] for a in audits) == STEPS * batch, audits
    assert all(a["duplicated"] == 0 for a in audits), audits
    assert all(a["missing"] == 0 for a in audits[:-1]), audits
    print(
        f"scale-down 3 -> 1 at step {result.scaled_at_step}: survivors' pause {settled['pause_seconds']:.2f} s "
        f"(longest in the window {result.pause:.2f} s), steady step {result.steady:.2f} s"
    )
