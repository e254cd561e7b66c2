"""The group's control channel on a real TCP store: commands in order, answers in rank order, no growth.

Followers are threads of this process with their own store clients (the channel is the same as
between rank processes); the leader's death is a store server that goes away.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from torch._C._distributed_c10d import TCPStore

from elastrain_trainer.group.control import RELEASE, ControlChannel, LeaderLostError, command_key


def _server() -> TCPStore:
    return TCPStore("127.0.0.1", 0, 1, is_master=True, wait_for_workers=False, timeout=timedelta(seconds=10))


def _client(port: int) -> TCPStore:
    return TCPStore("127.0.0.1", port, 1, is_master=False, timeout=timedelta(seconds=10))


def _follow(channel: ControlChannel, seen: list[Any]) -> None:
    """What a follower's ``follow`` does: answer each command with (rank, command) until released."""
    while (command := channel.next_command()) != RELEASE:
        seen.append(command)
        channel.answer((channel.rank, command))


def test_followers_run_every_command_in_order_and_the_leader_gathers_their_answers_in_rank_order() -> None:
    server = _server()
    world = 4
    leader = ControlChannel(server, rank=0, world=world)
    followers = [ControlChannel(_client(server.port), rank=r, world=world, wait_seconds=0.2) for r in range(1, world)]
    seen: list[list[Any]] = [[] for _ in followers]
    threads = [threading.Thread(target=_follow, args=(f, s)) for f, s in zip(followers, seen, strict=True)]
    for thread in threads:
        thread.start()
    answers = []
    for command in ["quorum", {"step": 1}, "quorum", {"step": 2}]:
        answers.append(leader.gather(leader.post(command)))
    leader.release()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive()
    assert answers[1] == [(1, {"step": 1}), (2, {"step": 1}), (3, {"step": 1})]
    assert all(s == ["quorum", {"step": 1}, "quorum", {"step": 2}] for s in seen)
    # A second round after a release continues the sequence (the driver re-starts follow before a step).
    threads = [threading.Thread(target=_follow, args=(f, s)) for f, s in zip(followers, seen, strict=True)]
    for thread in threads:
        thread.start()
    assert leader.gather(leader.post("again")) == [(1, "again"), (2, "again"), (3, "again")]
    leader.release()
    for thread in threads:
        thread.join(timeout=30)
    # Finished commands and answers are deleted (the release's key goes with the next answers).
    assert server.num_keys() <= 2, f"{server.num_keys()} keys left"
    assert not server.check([command_key(1), command_key(4)])


def test_a_group_of_one_rank_posts_nothing() -> None:
    server = _server()
    keys = server.num_keys()
    channel = ControlChannel(server, rank=0, world=1)
    assert channel.gather(channel.post("quorum")) == []
    channel.release()
    assert server.num_keys() == keys


def test_a_follower_waits_past_its_wait_interval_for_a_late_command() -> None:
    server = _server()
    follower = ControlChannel(_client(server.port), rank=1, world=2, wait_seconds=0.05)
    got: list[Any] = []
    thread = threading.Thread(target=lambda: got.append(follower.next_command()))
    thread.start()
    thread.join(timeout=0.5)  # several wait intervals pass with no command: still waiting, no error
    assert thread.is_alive() and not got
    ControlChannel(server, rank=0, world=2).post("late")
    thread.join(timeout=30)
    assert got == ["late"]


def test_a_follower_learns_that_the_leader_died_from_its_store() -> None:
    server = _server()
    follower = ControlChannel(_client(server.port), rank=1, world=2, wait_seconds=0.05)
    del server  # rank 0's process is gone: its store stops listening
    with pytest.raises(LeaderLostError, match="rank 1 lost the group's store"):
        follower.next_command()
