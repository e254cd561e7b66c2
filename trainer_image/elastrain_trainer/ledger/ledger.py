"""The shard ledger, owned by the driver: a pure, serialisable record of who trains which samples.

The data set's ``num_samples`` samples are cut into ``num_shards`` contiguous shards; each epoch
visits the shards in a seeded order. For every step the ledger hands each participating replica
group ``share`` samples as :class:`Piece` s (runs of samples inside one shard). When the step
commits, its pieces are recorded as trained; when it does not, its pieces go back to the front of
the queue and are handed out again next. :meth:`ShardLedger.audit` then proves that each sample
of an epoch was trained exactly once.

A step is settled as a whole, including the pieces of a group lost while the step was being
trained: the step commits only if its cross-group all-reduce completed, and a completed all-reduce
holds every member's gradient (a member that died before contributing fails the collective for
everyone, so nobody commits). So a group lost during a step leaves its pieces of that step in
flight (``give_back_group(group, during_step=step)``): a commit records them with the step, a
give-back returns them with the step. A group lost outside a step gives its pieces back at once.

A checkpoint stores :meth:`ShardLedger.state_dict`, which counts only committed work: pieces in
flight are folded back into the queue, so after a restore the work after the checkpoint is
handed out again, once.
"""

from __future__ import annotations

import bisect
import random
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, order=True)
class Piece:
    """Samples ``[start, stop)`` of epoch ``epoch``; never crosses a shard boundary."""

    epoch: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    def to_list(self) -> list[int]:
        return [self.epoch, self.start, self.stop]

    @classmethod
    def from_list(cls, values: Iterable[int]) -> Piece:
        epoch, start, stop = values
        return cls(epoch=epoch, start=start, stop=stop)


@dataclass(frozen=True)
class Audit:
    """Coverage of one epoch: samples never trained and samples trained more than once."""

    epoch: int
    num_samples: int
    trained: int
    missing: int
    duplicated: int

    @property
    def exact(self) -> bool:
        return self.missing == 0 and self.duplicated == 0


def shard_bounds(num_samples: int, num_shards: int, shard: int) -> tuple[int, int]:
    """Sample range ``[start, stop)`` of ``shard`` (shards differ in size by at most one sample)."""
    return shard * num_samples // num_shards, (shard + 1) * num_samples // num_shards


class ShardLedger:
    """Hands out samples per step and per group, takes back uncommitted work, audits each epoch."""

    def __init__(self, *, num_samples: int, num_shards: int, seed: int, shuffle: bool = True) -> None:
        if num_samples < 1 or not 1 <= num_shards <= num_samples:
            raise ValueError(
                f"ledger needs 1 <= num_shards <= num_samples, got num_shards={num_shards}, num_samples={num_samples}"
            )
        self.num_samples = num_samples
        self.num_shards = num_shards
        self.seed = seed
        self.shuffle = shuffle
        self._next_epoch = 0
        self._queue: deque[Piece] = deque()
        self._in_flight: dict[int, dict[str, list[Piece]]] = {}
        # Per epoch: sorted, disjoint, merged intervals of committed samples, and overlap count.
        self._done: dict[int, list[list[int]]] = {}
        self._duplicated: dict[int, int] = {}

    # -- handing out --------------------------------------------------------------------------

    def shard_order(self, epoch: int) -> list[int]:
        """The order in which ``epoch`` visits the shards (seeded; identity without shuffle)."""
        order = list(range(self.num_shards))
        if self.shuffle:
            random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return order

    def _open_epoch(self) -> None:
        epoch = self._next_epoch
        for shard in self.shard_order(epoch):
            start, stop = shard_bounds(self.num_samples, self.num_shards, shard)
            if stop > start:
                self._queue.append(Piece(epoch, start, stop))
        self._next_epoch += 1

    def _take(self, count: int) -> list[Piece]:
        taken: list[Piece] = []
        while count > 0:
            if not self._queue:
                self._open_epoch()
            piece = self._queue.popleft()
            if piece.size > count:
                taken.append(Piece(piece.epoch, piece.start, piece.start + count))
                self._queue.appendleft(Piece(piece.epoch, piece.start + count, piece.stop))
                count = 0
            else:
                taken.append(piece)
                count -= piece.size
        return taken

    def assign(self, step: int, shares: Mapping[str, int]) -> dict[str, list[Piece]]:
        """Hand ``shares[group]`` samples to each group for ``step`` (in the mapping's order)."""
        if step in self._in_flight:
            raise ValueError(f"step {step} already has work in flight; commit or give it back first")
        if any(n < 0 for n in shares.values()):
            raise ValueError(f"shares must not be negative, got {dict(shares)}")
        assignment = {group: self._take(count) for group, count in shares.items()}
        self._in_flight[step] = assignment
        return {group: list(pieces) for group, pieces in assignment.items()}

    def in_flight(self, step: int) -> dict[str, list[Piece]]:
        return {group: list(pieces) for group, pieces in self._in_flight.get(step, {}).items()}

    # -- resolving a step ---------------------------------------------------------------------

    def commit(self, step: int, groups: Iterable[str] | None = None) -> int:
        """Record the step's pieces as trained (only ``groups``' if given; the rest go back). Returns samples.

        Without ``groups`` this includes the pieces of groups lost during the step (see the module docstring).
        """
        assignment = self._in_flight.pop(step)
        keep = set(assignment) if groups is None else set(groups)
        trained = 0
        for group, pieces in assignment.items():
            if group in keep:
                for piece in pieces:
                    self._record(piece)
                    trained += piece.size
        self._return([p for g, pieces in assignment.items() if g not in keep for p in pieces])
        return trained

    def give_back(self, step: int) -> int:
        """Return every piece of an uncommitted step to the front of the queue. Returns samples."""
        assignment = self._in_flight.pop(step, {})
        pieces = [p for group_pieces in assignment.values() for p in group_pieces]
        self._return(pieces)
        return sum(p.size for p in pieces)

    def give_back_group(self, group: str, *, during_step: int | None = None) -> int:
        """Return a lost group's pieces of every step in flight, except of ``during_step``. Returns samples.

        ``during_step`` is the step the group was being trained in when it was lost: its pieces of
        that step stay in flight and are settled with the step (:meth:`commit` records them, since a
        committed all-reduce holds the lost group's gradient; :meth:`give_back` returns them).
        """
        pieces: list[Piece] = []
        for step, assignment in self._in_flight.items():
            if step != during_step:
                pieces.extend(assignment.pop(group, []))
        self._return(pieces)
        return sum(p.size for p in pieces)

    def _return(self, pieces: list[Piece]) -> None:
        self._queue.extendleft(reversed(pieces))

    def _record(self, piece: Piece) -> None:
        intervals = self._done.setdefault(piece.epoch, [])
        start, stop = piece.start, piece.stop
        # Count overlap with committed intervals, then merge [start, stop) into the sorted list.
        i = bisect.bisect_left(intervals, [start, -1])
        if i > 0 and intervals[i - 1][1] >= start:
            i -= 1
        j = i
        overlap = 0
        new_start, new_stop = start, stop
        while j < len(intervals) and intervals[j][0] <= stop:
            lo, hi = intervals[j]
            overlap += max(0, min(hi, stop) - max(lo, start))
            new_start, new_stop = min(new_start, lo), max(new_stop, hi)
            j += 1
        intervals[i:j] = [[new_start, new_stop]]
        if overlap:
            self._duplicated[piece.epoch] = self._duplicated.get(piece.epoch, 0) + overlap

    # -- audit --------------------------------------------------------------------------------

    def trained(self, epoch: int) -> int:
        return sum(hi - lo for lo, hi in self._done.get(epoch, []))

    def audit(self, epoch: int) -> Audit:
        trained = self.trained(epoch)
        return Audit(
            epoch=epoch,
            num_samples=self.num_samples,
            trained=trained,
            missing=self.num_samples - trained,
            duplicated=self._duplicated.get(epoch, 0),
        )

    @property
    def epochs_started(self) -> int:
        return self._next_epoch

    def pending(self) -> list[Piece]:
        """Pieces waiting to be handed out, in order (returned work first)."""
        return list(self._queue)

    # -- serialisation ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state of committed work; in-flight pieces are saved as pending."""
        in_flight = [p for step in sorted(self._in_flight) for ps in self._in_flight[step].values() for p in ps]
        return {
            "num_samples": self.num_samples,
            "num_shards": self.num_shards,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "next_epoch": self._next_epoch,
            "queue": [p.to_list() for p in [*in_flight, *self._queue]],
            "done": {str(epoch): [list(iv) for iv in ivs] for epoch, ivs in self._done.items()},
            "duplicated": {str(epoch): n for epoch, n in self._duplicated.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if (state["num_samples"], state["num_shards"]) != (self.num_samples, self.num_shards):
            raise ValueError(
                f"ledger state is for num_samples={state['num_samples']}, num_shards={state['num_shards']}; "
                f"this ledger has num_samples={self.num_samples}, num_shards={self.num_shards}"
            )
        self.seed = int(state["seed"])
        self.shuffle = bool(state["shuffle"])
        self._next_epoch = int(state["next_epoch"])
        self._queue = deque(Piece.from_list(p) for p in state["queue"])
        self._in_flight = {}
        self._done = {int(epoch): [list(iv) for iv in ivs] for epoch, ivs in state["done"].items()}
        self._duplicated = {int(epoch): int(n) for epoch, n in state["duplicated"].items()}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> ShardLedger:
        ledger = cls(
            num_samples=int(state["num_samples"]),
            num_shards=int(state["num_shards"]),
            seed=int(state["seed"]),
            shuffle=bool(state["shuffle"]),
        )
        ledger.load_state_dict(state)
        return ledger
