"""The group's control channel: the leader (rank 0) hands its ranks the driver's commands over the group's store.

The driver makes one Ray call per group per phase, on the leader; the group's other ranks sit in one
long :meth:`~.worker.RankWorker.follow` call and take their commands from here. The leader posts
each command once under a sequence number; every follower reads it, runs it and posts its answer;
the leader gathers the answers in rank order and returns them with its own. Rank 0 hosts the TCP
store, so a follower waiting for a command learns of the leader's death from the store's connection
(:class:`LeaderLostError`), and a follower's death fails the leader's next collective.

Waiting never spins: a follower blocks in the store's ``wait`` (re-armed every ``wait_seconds``, the
driver may be idle for long, e.g. while a new group sets up). Keys of finished commands are deleted,
so the store does not grow with the number of steps.
"""

from __future__ import annotations

import pickle
from datetime import timedelta
from typing import Any, Protocol

from torch.distributed import DistNetworkError, DistStoreError

#: Key prefix of the channel in the group's store (torchft and the process group use other keys).
PREFIX = "elastrain/control"

#: The command that ends the followers' ``follow`` call (the driver then calls every rank itself).
RELEASE = "release"

#: The command of a step's first phase: every rank forms the quorum (the train phase's command is its StepPlan).
QUORUM = "quorum"


class LeaderLostError(RuntimeError):
    """The leader's store went away while a follower waited for a command: the leader died."""


class Store(Protocol):
    """The part of ``torch.distributed.Store`` the channel uses."""

    def set(self, key: str, value: str) -> None: ...

    def get(self, key: str) -> bytes: ...

    def wait(self, keys: list[str], timeout: timedelta) -> None: ...

    def delete_key(self, key: str) -> bool: ...


def command_key(seq: int) -> str:
    return f"{PREFIX}/cmd/{seq}"


def answer_key(seq: int, rank: int) -> str:
    return f"{PREFIX}/ans/{seq}/{rank}"


class ControlChannel:
    """One rank's end of the channel; rank 0 posts and gathers, the others read and answer."""

    def __init__(self, store: Store, *, rank: int, world: int, wait_seconds: float = 30.0) -> None:
        self.store = store
        self.rank = rank
        self.world = world
        self.wait = timedelta(seconds=wait_seconds)
        self.seq = 0
        """The last command posted (leader) or read (follower)."""
        self._stale: list[str] = []
        """Keys the leader deletes once the next answers are in (every follower has read them by then)."""

    # -- the leader ---------------------------------------------------------------------------

    def post(self, command: Any) -> int:
        """Leader: hand ``command`` to every follower; its sequence number (for :meth:`gather`)."""
        self.seq += 1
        if self.world > 1:
            self.store.set(command_key(self.seq), pickle.dumps(command).hex())
        return self.seq

    def gather(self, seq: int) -> list[Any]:
        """Leader: the followers' answers to command ``seq``, in rank order (blocks until all are in).

        A follower that died never answers; the driver, which watches every rank, loses the group.
        """
        keys = [answer_key(seq, rank) for rank in range(1, self.world)]
        if not keys:
            return []
        self._wait(keys)
        answers = [pickle.loads(bytes.fromhex(self.store.get(key).decode())) for key in keys]
        for key in [*self._stale, command_key(seq), *keys]:
            self.store.delete_key(key)
        self._stale.clear()
        return answers

    def release(self) -> None:
        """Leader: end the followers' ``follow`` calls (their command key is deleted with the next answers)."""
        seq = self.post(RELEASE)
        if self.world > 1:
            self._stale.append(command_key(seq))

    # -- a follower ---------------------------------------------------------------------------

    def next_command(self) -> Any:
        """Follower: the leader's next command (blocks until posted); LeaderLostError if the leader died."""
        key = command_key(self.seq + 1)
        try:
            self._wait([key])
            command = pickle.loads(bytes.fromhex(self.store.get(key).decode()))
        except DistNetworkError as error:
            raise LeaderLostError(f"rank {self.rank} lost the group's store (rank 0): {error}") from error
        self.seq += 1
        return command

    def answer(self, value: Any) -> None:
        """Follower: post the answer to the command read last."""
        self.store.set(answer_key(self.seq, self.rank), pickle.dumps(value).hex())

    def _wait(self, keys: list[str]) -> None:
        while True:
            try:
                self.store.wait(keys, self.wait)
                return
            except DistStoreError as error:
                if "timeout" not in str(error):
                    raise
