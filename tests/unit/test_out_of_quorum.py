"""The driver's count of worker pods whose group it fenced as hung and that have not trained since."""

from __future__ import annotations

from elastrain_trainer.driver.out_of_quorum import WORKER_HUNG, OutOfQuorum


def test_hung_drops_count_until_the_nodes_group_trains_again() -> None:
    out = OutOfQuorum()
    out.dropped("node-a", hung=True)
    out.dropped("node-b", hung=True)
    assert (out.count, out.last_reason) == (2, WORKER_HUNG)
    out.trained(["node-b", "node-c"])
    assert out.count == 1
    out.trained(["node-a"])
    assert (out.count, out.last_reason) == (0, None)


def test_a_dead_rank_is_not_counted_its_pod_may_be_going() -> None:
    out = OutOfQuorum()
    out.dropped("node-a", hung=False)
    assert out.count == 0
    out.dropped("node-a", hung=True)
    out.dropped("node-a", hung=False)  # its restarted group died: pod readiness tells the rest
    assert (out.count, out.last_reason) == (0, None)


def test_nodes_that_left_the_ray_cluster_are_forgotten() -> None:
    out = OutOfQuorum()
    out.dropped("node-a", hung=True)
    out.dropped("node-b", hung=True)
    out.keep({"node-b", "node-c"})
    assert out.nodes == {"node-b": WORKER_HUNG}
