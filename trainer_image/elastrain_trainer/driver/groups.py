"""Start, track and stop one replica group: G rank actors kept together on one Ray node.

The driver calls the group's leader (rank 0) once per step phase; while the group trains, its other
ranks sit in one long ``follow`` call each (``follow_refs``), which ends only when the leader releases
them or they fail: the driver watches these refs to learn of a lost rank without calling it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from elastrain_trainer.group import GroupAddress, RankWorker


@dataclass
class GroupHandle:
    """A replica group the driver started; ``setup_refs`` resolve when its ranks are ready."""

    group_id: str
    node_id: str
    actors: list[Any]
    setup_refs: list[Any]
    started_at: float
    ready: bool = False
    step_at_ready: int = 0
    quorum_refs: list[Any] | None = None
    info: dict[str, float] = field(default_factory=dict)
    follow_refs: list[Any] = field(default_factory=list)
    """The followers' pending ``follow`` calls (empty: released, or a group of one rank)."""

    @property
    def leader(self) -> Any:
        """Rank 0's actor: it takes the driver's step calls and hands them to the group's other ranks."""
        return self.actors[0]

    def ensure_following(self) -> None:
        """Start the followers' ``follow`` calls unless they are running (before a leader's step call)."""
        if not self.follow_refs and len(self.actors) > 1:
            self.follow_refs = [actor.follow.remote() for actor in self.actors[1:]]

    def release(self) -> None:
        """Have the leader end the followers' ``follow`` calls, so every rank can be called (not waited for).

        The ranks' later calls queue behind ``follow`` and run once the leader's release reaches them.
        """
        if self.follow_refs:
            self.leader.release.remote()
            self.follow_refs = []

    def kill(self) -> None:
        for actor in self.actors:
            ray.kill(actor, no_restart=True)


def start_group(
    *,
    group_id: str,
    node_id: str,
    node_ip: str,
    ranks: int,
    cfg_json: str,
    lighthouse: str,
    resume_step: int | None,
    worker_kwargs: dict[str, Any],
    started_at: float,
    ray_node_id: str | None = None,
    worker_cls: type[Any] | None = None,
) -> GroupHandle:
    """Create the group's rank actors on ``node_id`` and start their set-up (not waited for).

    ``ray_node_id``: the Ray node the actors run on when it is not ``node_id`` itself (the control-path
    benchmark runs many pods' groups on one node). ``worker_cls``: a test-only seam (see ``WorkerSeam``).
    """
    strategy = NodeAffinitySchedulingStrategy(node_id=ray_node_id or node_id, soft=False)
    address = GroupAddress(group_id=group_id, store_host=node_ip, store_port=0, lighthouse=lighthouse, world_size=ranks)
    actor_cls: Any = ray.remote(worker_cls or RankWorker)
    actors = [
        actor_cls.options(
            num_cpus=0,
            resources={"elastrain_worker": 1},
            scheduling_strategy=strategy,
            max_restarts=0,
            name=f"{group_id}-rank{rank}",
            runtime_env={"env_vars": {"RUST_LOG": "warn"}},
        ).remote(cfg_json, address, rank, advertise_host=node_ip, **worker_kwargs)
        for rank in range(ranks)
    ]
    # Rank 0 opens its store on a port the kernel picks; Ray hands the port to every rank's set-up
    # without a wait here (an actor runs its calls in order, so rank 0's store is up before its set-up).
    port_ref = actors[0].open_store.remote()
    setup_refs = [actor.setup.remote(resume_step, port_ref) for actor in actors]
    return GroupHandle(group_id=group_id, node_id=node_id, actors=actors, setup_refs=setup_refs, started_at=started_at)
