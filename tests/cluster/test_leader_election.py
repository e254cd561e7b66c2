"""Operator replicas: only the Lease holder leads; a standby takes over when the leader stops renewing."""

from __future__ import annotations

import time

from kubernetes import config

from elastrain_dev.cluster import LocalCluster
from elastrain_operator.kube.client import KubeApi
from elastrain_operator.kube.lease import LeaderLease


def test_one_leader_at_a_time_and_takeover_after_expiry(cluster: LocalCluster, namespace: str) -> None:
    api = KubeApi(config.new_client_from_config(config_file=str(cluster.kubeconfig)))

    def replica(identity: str) -> LeaderLease:
        return LeaderLease(api, namespace=namespace, name="elastrain-operator", identity=identity, duration_seconds=2)

    first, second = replica("replica-a"), replica("replica-b")
    assert first.try_acquire() is True
    assert second.try_acquire() is False  # held and fresh
    assert first.try_acquire() is True  # renewal by the holder
    lease = api.coordination.read_namespaced_lease("elastrain-operator", namespace)
    assert lease.spec.holder_identity == "replica-a"
    time.sleep(2.5)  # the leader stops renewing for longer than the lease duration
    assert second.try_acquire() is True
    assert first.try_acquire() is False
    lease = api.coordination.read_namespaced_lease("elastrain-operator", namespace)
    assert lease.spec.holder_identity == "replica-b"
