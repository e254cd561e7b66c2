"""The driver's count of worker pods whose group it dropped and that have not trained since."""

from __future__ import annotations

from elastrain_trainer.driver.out_of_quorum import WORKER_HUNG, WORKER_LOST, OutOfQuorum


def test_drops_count_until_the_nodes_group_trains_again() -> None:
    out = OutOfQuorum()
    out.dropped("node-a", hung=True, node_gone=False)
    assert (out.count, out.last_reason) == (1, WORKER_HUNG)
    out.dropped("node-b", hung=False, node_gone=False)
    assert (out.count, out.last_reason) == (2, WORKER_LOST)
    out.trained(["node-b", "node-c"])
    assert out.count == 1
    out.trained(["node-a"])
    assert (out.count, out.last_reason) == (0, None)


def test_a_node_gone_is_not_counted_its_pod_is_gone() -> None:
    out = OutOfQuorum()
    out.dropped("node-a", hung=False, node_gone=False)
    out.dropped("node-a", hung=False, node_gone=True)
    assert (out.count, out.last_reason) == (0, None)
    out.dropped("node-b", hung=False, node_gone=True)
    assert out.count == 0


def test_a_second_drop_of_the_same_pod_counts_once_with_the_newest_reason() -> None:
    out = OutOfQuorum()
    out.dropped("node-a", hung=False, node_gone=False)
    out.dropped("node-a", hung=True, node_gone=False)
    assert (out.count, out.last_reason, out.nodes) == (1, WORKER_HUNG, {"node-a": WORKER_HUNG})
