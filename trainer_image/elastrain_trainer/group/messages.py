"""Values passed between the driver and the ranks of a replica group (picklable, no torch)."""

from __future__ import annotations

from dataclasses import dataclass, field

from elastrain_trainer.checkpoint.faults import SaveFailure
from elastrain_trainer.ledger import Piece


@dataclass(frozen=True)
class GroupAddress:
    """Where a group's ranks rendezvous (rank 0 hosts the TCP store) and the lighthouse is."""

    group_id: str
    store_host: str
    store_port: int
    lighthouse: str
    world_size: int


@dataclass(frozen=True)
class QuorumInfo:
    """What one rank learned from the step's quorum."""

    group_id: str
    rank: int
    quorum_id: int
    participants: int
    replica_rank: int | None
    step: int
    healed: bool
    heal_seconds: float


@dataclass(frozen=True)
class StepPlan:
    """One group's work for one step: its samples, gradient weight, and the quorum it must match."""

    step: int
    pieces: list[Piece]
    weight: float
    participants: int
    checkpoint: bool = False
    ledger_state: dict[str, object] | None = None
    delay_seconds: float = 0.0
    """Artificial slowdown per step (benchmarks and load-balance tests)."""
    compression_strength: float | int | bool | None = None
    """The codec's strength for this step (top-k ratio, PowerSGD rank, int8 on), the same for every group;
    None keeps the configured one (no dynamic policy)."""
    exit_after_reduce: bool = False
    """Fault-injection seam for tests and chaos drills: every rank exits (``os._exit(1)``) once the step's
    cross-group reduction has finished, before it resolves; the survivors' update holds this group's gradient."""
    raise_in_step: bool = False
    """Fault-injection seam for tests and chaos drills: every rank raises, before its forward, the
    ``IndexError`` an embedding raises on a token id out of its range (a crash loop's usual cause)."""
    collective_timeout_seconds: float | None = None
    """This step's cross-group collective timeout (the step watchdog's bound; None: the configured one)."""
    stop_in_step: bool = False
    """Fault-injection seam for tests and chaos drills: every rank freezes itself (``SIGSTOP``) before its
    forward, as a host wedged in the kernel or a collective that never returns: the step watchdog's case."""
    quorum_after: bool = False
    """Pipelined control: right after the step every rank forms the next step's quorum, and its
    result carries the answer (``StepResult.next_quorum``), so the next step needs no quorum call."""


#: The prefix of a step phase's seconds in ``StepResult.extra`` (see :mod:`elastrain_trainer.group.step`).
PHASE_PREFIX = "phase_"


@dataclass(frozen=True)
class StepResult:
    """One rank's report of a step."""

    group_id: str
    rank: int
    step: int
    committed: bool
    loss_sum: float
    tokens: int
    samples: int
    compute_seconds: float
    comm_seconds: float
    step_seconds: float
    participants: int
    checkpoint_saved: int | None = None
    checkpoint_failures: tuple[SaveFailure, ...] = ()
    """Saves abandoned during the step (rank 0's name the cause); training went on."""
    extra: dict[str, float] = field(default_factory=dict)
    next_quorum: QuorumInfo | None = None
    """The next step's quorum, formed right after this step when the plan asked (``quorum_after``)."""


@dataclass(frozen=True)
class SaveReport:
    """What a flush or a final save did: the step marked latest, and the saves abandoned on the way."""

    marked: int | None = None
    failures: tuple[SaveFailure, ...] = ()
