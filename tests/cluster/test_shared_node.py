"""Two jobs whose heads land on the same fake node both train, as they would on one real node.

The heads prefer a node without GPUs; the test adds the only such node, so both land there. Each
head is the real ``elastrain pod head`` under the pod runner: the Ray head (its GCS listens on every
interface of the machine, so the runner gives each job a Ray port of its own), the torchft
lighthouse and the progress server (on the pod's own loopback address). Before per-pod addresses
and per-job Ray ports, the second head failed with "Address already in use".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.cluster.conftest import BASE_JOB

from elastrain_dev import nodes
from elastrain_dev.cluster import LocalCluster
from elastrain_dev.jobdriver import JobDriver
from elastrain_dev.podrunner import RUN_LABEL
from elastrain_dev.wait import until

TINY: dict[str, Any] = {
    "steps": 8,
    "globalBatchSize": 8,
    "lrSchedule": {"warmupSteps": 2},
    "model": {"dim": 32, "numHeads": 2, "numLayers": 1, "seqLen": 32, "vocabSize": 64},
    "data": {"syntheticTokens": 32 * 64, "numShards": 4},
}


@pytest.fixture
def head_node(cluster: LocalCluster) -> Iterator[str]:
    """The one node without GPUs: where every head goes (its nodeAffinity prefers such a node)."""
    (name,) = nodes.add_nodes(cluster, count=1, gpus=0, cpu="16", prefix="shared-heads-")
    nodes.wait_nodes_ready(cluster)
    yield name
    cluster.kubectl("delete", "node", name, "--wait=false", check=False)


@pytest.mark.usefixtures("trainingjob_crd", "operator", "runner")
def test_two_jobs_whose_heads_share_a_node_both_succeed(cluster: LocalCluster, namespace: str, head_node: str) -> None:
    jobs = [JobDriver(cluster, namespace, base=BASE_JOB, name=name) for name in ("first", "second")]
    for job in jobs:
        job.create(
            device="cpu",
            replicas=1,
            acceleratorsPerWorker=1,
            pod={"labels": {RUN_LABEL: "true"}},
            trainer=TINY,
        )
    heads = [job.running("head") for job in jobs]
    assert [h["spec"]["nodeName"] for h in heads] == [head_node, head_node], [h["spec"] for h in heads]
    assert heads[0]["status"]["podIP"] != heads[1]["status"]["podIP"]
    for job in jobs:
        status = until(
            lambda job=job: (s := job.status()).get("phase") in ("Succeeded", "Failed") and s,
            what=f"job {job.name} to finish",
            timeout=300,
        )
        assert status["phase"] == "Succeeded", status.get("conditions")
        assert status["progress"]["step"] == TINY["steps"], status["progress"]
