"""A group frozen in the middle of a step is fenced by the step watchdog in seconds, not by the step timeout.

Two replica groups of one rank, one per simulated pod, a tiny GPT. At one step the first group's rank
freezes itself with ``SIGSTOP`` before its forward (the ``stop_in_step`` seam: a host wedged in the
kernel, a collective that never returns), so the other group waits in the step's cross-group
reduction. The step watchdog's bound (a 2 s floor here, past a short warm-up) sets the step's
collective timeout: the survivor's reduction errors out, the step is not committed, and the frozen
group, still without an answer past its bound while the survivor answered, is fenced (its rank
killed). The survivor commits alone, a new group starts on the same pod and heals from it, and every
sample is trained exactly once.
"""

from __future__ import annotations

import time

from tests.trainer.helpers import count_samples, fast_options, tiny_config

from elastrain_trainer.driver import Driver, StopInStep
from elastrain_trainer.driver.loop import Hook
from elastrain_trainer.driver.watchdog import HangPolicy
from elastrain_trainer.localmode import LocalCluster
from elastrain_trainer.pod.summary import build_summary

FAULT_STEP = 6
VICTIM = "group1"  # the driver names its groups group1, group2, ... in start order
SURVIVOR = "group2"
HANG = HangPolicy(factor=10.0, floor_seconds=2.0, startup_seconds=60.0, warmup_steps=4)
#: Seconds the hook waits for the replacement group before the test fails.
WAIT_SECONDS = 180.0


def wait_for_replacement_before(last_steps: int, total: int, out: list[tuple[int, str | None]]) -> Hook:
    """A ``Driver.run`` hook: before the last ``last_steps`` steps, block until two groups are ready again.

    The survivor trains alone meanwhile; the replacement then heals and trains the last steps. ``out``
    gets the pods out of the quorum, and why, as the driver reports them then.
    """

    def hook(driver: Driver, step: int) -> None:
        if step != total - last_steps:
            return
        out.append((driver.out_of_quorum.count, driver.out_of_quorum.last_reason))
        deadline = time.monotonic() + WAIT_SECONDS
        while sum(1 for g in driver.groups.values() if g.ready) < 2:
            assert time.monotonic() < deadline, f"no replacement group after {WAIT_SECONDS} s: {driver.events}"
            driver.reconcile()
            driver._poll_setup()
            time.sleep(0.05)

    return hook


def test_frozen_group_is_fenced_by_the_watchdog_and_the_survivor_commits_alone(two_pods: LocalCluster) -> None:
    cfg = tiny_config(steps=14, globalBatchSize=16, data={"syntheticTokens": 1024, "numShards": 4})
    options = fast_options(start_groups=2, hang=HANG, stop_in_step=StopInStep(VICTIM, FAULT_STEP))
    driver = Driver(cfg, options)
    out: list[tuple[int, str | None]] = []
    try:
        result = driver.run(hook=wait_for_replacement_before(3, cfg.steps, out))
    finally:
        driver.shutdown()
    summary = build_summary(
        job="hung",
        pod="head",
        step=result.step,
        total_steps=cfg.steps,
        audits=[result.ledger.audit(0)],
        committed=result.committed,
        metrics=[m for m in result.metrics if m.committed],
        events=result.events,
    )
    events = summary["events"]
    story = "\n".join(map(str, events))
    hung = [e for e in events if e["kind"] == "group_hung"]
    lost = [e for e in events if e["kind"] == "group_lost"]
    fenced_at = hung[0]["time"] if hung else float("nan")
    after = [m for m in result.metrics if m.committed and m.wall_time > fenced_at]
    print(
        f"\nhung group: {hung}; survivor's next commit {after[0].wall_time - fenced_at:.2f} s after the verdict; "
        f"attempts {[(m.step, m.committed, m.groups) for m in result.metrics]}"
    )

    assert result.step == cfg.steps, story
    # The watchdog fenced the frozen group in the step it froze in; the step timeout never fired.
    assert [(e["group"], e["step"]) for e in hung] == [(VICTIM, FAULT_STEP)], story
    assert hung[0]["bound_seconds"] < options.timeouts.collective_seconds, story
    assert not [e for e in events if e["kind"] in ("train_timeout", "quorum_timeout")], story
    assert [(e["group"], e["during_step"], e["reason"].split(":")[0]) for e in lost] == [
        (VICTIM, FAULT_STEP, "hung")
    ], story
    # The survivor committed the step again alone, then a new group on the same pod healed and joined.
    assert after and after[0].groups == 1 and after[0].step == FAULT_STEP + 1, story
    assert set(result.committed[FAULT_STEP]) == {SURVIVOR}, story
    # Meanwhile the victim's pod was reported out of the quorum, hung; back in once its new group trained.
    assert out == [(1, "WorkerHung")] and driver.out_of_quorum.count == 0, (out, driver.out_of_quorum)
    healed = [e["group"] for e in events if e["kind"] == "group_healed"]
    assert "group3" in healed and set(result.committed[-1]) == {SURVIVOR, "group3"}, story
    # Every sample trained exactly once: the frozen group's pieces of the failed step went back to the ledger.
    counts = count_samples(result.committed)
    for epoch, counter in counts.items():
        assert set(counter.values()) == {1}, f"epoch {epoch} trained samples twice: {counter}"
    assert sorted(counts[0]) == list(range(result.ledger.num_samples))
    audit = summary["audit"][0]
    assert audit["missing"] == 0 and audit["duplicated"] == 0, audit
