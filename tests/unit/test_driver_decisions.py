"""The driver's pure decisions: quorum completion, resume point, checkpoint group, evaluation, step metrics,
when to stop restarting groups whose set-up or steps keep failing, when to report a failing node.

Each table row is named by the behaviour it pins; the functions are called directly on plain messages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from elastrain_trainer.checkpoint import CheckpointChoice, DriverRecord, SkippedCheckpoint
from elastrain_trainer.compression import StepSample, Strength
from elastrain_trainer.driver.quorum import QuorumAbandoned, QuorumComplete, decide_quorum
from elastrain_trainer.driver.restore import Event, Resume, decide_resume
from elastrain_trainer.driver.setup_errors import decide_setup_give_up
from elastrain_trainer.driver.step_errors import (
    FAILING_REPORT_LOSSES,
    decide_failing_report,
    decide_step_give_up,
    explain_error,
)
from elastrain_trainer.driver.step_metrics import MAX_LOG_PERPLEXITY, build_step_metrics, eval_due, strength_sample
from elastrain_trainer.driver.train import decide_checkpoint_group
from elastrain_trainer.group import QuorumInfo, StepResult

# -- decide_quorum -----------------------------------------------------------------------------------


def info(group_id: str, quorum_id: int, participants: int) -> QuorumInfo:
    """Rank 0's view of quorum ``quorum_id`` as group ``group_id`` answered it."""
    return QuorumInfo(
        group_id=group_id,
        rank=0,
        quorum_id=quorum_id,
        participants=participants,
        replica_rank=0,
        step=0,
        healed=False,
        heal_seconds=0.0,
    )


@dataclass(frozen=True)
class Complete:
    """Expect QuorumComplete whose members are exactly these groups, each with the info it answered."""

    groups: tuple[str, ...]


@dataclass(frozen=True)
class QuorumCase:
    id: str
    answers: tuple[tuple[str, int, int], ...]
    """(group, quorum id, participants) per answering group."""
    waiting: bool
    expected: Complete | QuorumAbandoned | None


def complete(*groups: str) -> Complete:
    return Complete(groups)


QUORUM_CASES = [
    QuorumCase("no-answer-yet-is-undecided", (), waiting=True, expected=None),
    QuorumCase("no-answer-and-nobody-waiting-is-still-undecided", (), waiting=False, expected=None),
    QuorumCase("single-group-quorum-of-one-is-complete", (("a", 1, 1),), waiting=False, expected=complete("a")),
    QuorumCase(
        "newest-quorum-with-all-participants-answering-is-complete",
        (("a", 4, 2), ("b", 4, 2)),
        waiting=False,
        expected=complete("a", "b"),
    ),
    QuorumCase(
        "complete-quorum-wins-even-while-another-group-is-waiting",
        (("a", 4, 2), ("b", 4, 2)),
        waiting=True,
        expected=complete("a", "b"),
    ),
    QuorumCase(
        "older-quorum-id-answers-are-ignored-in-a-complete-quorum",
        (("old", 3, 3), ("a", 4, 2), ("b", 4, 2)),
        waiting=False,
        expected=complete("a", "b"),
    ),
    QuorumCase(
        "older-quorum-id-answers-do-not-count-towards-the-newest",
        (("old", 3, 2), ("a", 4, 2)),
        waiting=True,
        expected=None,
    ),
    QuorumCase(
        "newest-quorum-missing-an-answer-while-a-call-is-pending-is-undecided",
        (("a", 4, 3), ("b", 4, 3)),
        waiting=True,
        expected=None,
    ),
    QuorumCase(
        "quorum-counting-a-dead-group-with-nobody-waiting-is-abandoned",
        (("a", 4, 3), ("b", 4, 3)),
        waiting=False,
        expected=QuorumAbandoned(participants=3),
    ),
    QuorumCase(
        "abandoned-quorum-reports-the-newest-quorums-participants-not-an-older-ones",
        (("old", 2, 5), ("a", 4, 3)),
        waiting=False,
        expected=QuorumAbandoned(participants=3),
    ),
]


@pytest.mark.parametrize("case", QUORUM_CASES, ids=[c.id for c in QUORUM_CASES])
def test_decide_quorum(case: QuorumCase) -> None:
    infos = {g: info(g, qid, participants) for g, qid, participants in case.answers}
    decision = decide_quorum(infos, waiting=case.waiting)
    if isinstance(case.expected, Complete):
        assert isinstance(decision, QuorumComplete)
        assert decision.members == {g: infos[g] for g in case.expected.groups}
    else:
        assert decision == case.expected


# -- decide_resume -----------------------------------------------------------------------------------

LEDGER = {"num_samples": 100, "cursor": 7}


def skipped(step: int, reason: str) -> SkippedCheckpoint:
    return SkippedCheckpoint(step=step, path=Path(f"/ckpt/step-{step:09d}"), reason=reason)


def skipped_event(step: int, reason: str) -> Event:
    return ("checkpoint_skipped", {"checkpoint_step": step, "path": f"/ckpt/step-{step:09d}", "reason": reason})


@dataclass(frozen=True)
class ResumeCase:
    id: str
    choice: CheckpointChoice | None
    step: int
    expected: Resume


RESUME_CASES = [
    ResumeCase(
        "no-store-at-the-start-starts-fresh-silently",
        None,
        0,
        Resume(step=0, resume_step=None, ledger_state=None, events=()),
    ),
    ResumeCase(
        "no-store-after-progress-records-restart-from-scratch",
        None,
        12,
        Resume(step=0, resume_step=None, ledger_state=None, events=(("restart_from_scratch", {"lost_step": 12}),)),
    ),
    ResumeCase(
        "empty-store-at-the-start-starts-fresh-silently",
        CheckpointChoice(record=None),
        0,
        Resume(step=0, resume_step=None, ledger_state=None, events=()),
    ),
    ResumeCase(
        "no-checkpoint-after-progress-records-restart-from-scratch",
        CheckpointChoice(record=None),
        7,
        Resume(step=0, resume_step=None, ledger_state=None, events=(("restart_from_scratch", {"lost_step": 7}),)),
    ),
    ResumeCase(
        "every-checkpoint-skipped-records-each-skip-then-restart-from-scratch",
        CheckpointChoice(record=None, skipped=(skipped(20, "truncated"), skipped(10, "corrupted"))),
        25,
        Resume(
            step=0,
            resume_step=None,
            ledger_state=None,
            events=(
                skipped_event(20, "truncated"),
                skipped_event(10, "corrupted"),
                ("restart_from_scratch", {"lost_step": 25}),
            ),
        ),
    ),
    ResumeCase(
        "every-checkpoint-skipped-at-the-start-records-only-the-skips",
        CheckpointChoice(record=None, skipped=(skipped(10, "unreadable"),)),
        0,
        Resume(step=0, resume_step=None, ledger_state=None, events=(skipped_event(10, "unreadable"),)),
    ),
    ResumeCase(
        "checkpoint-behind-the-driver-restores-it-and-records-restored",
        CheckpointChoice(record=DriverRecord(step=10, ledger=LEDGER)),
        14,
        Resume(
            step=10,
            resume_step=10,
            ledger_state=LEDGER,
            events=(("restored", {"from_step": 14, "checkpoint_step": 10}),),
        ),
    ),
    ResumeCase(
        "new-driver-restores-the-newest-checkpoint-and-records-restored",
        CheckpointChoice(record=DriverRecord(step=30, ledger=LEDGER)),
        0,
        Resume(
            step=30,
            resume_step=30,
            ledger_state=LEDGER,
            events=(("restored", {"from_step": 0, "checkpoint_step": 30}),),
        ),
    ),
    ResumeCase(
        "checkpoint-at-the-drivers-step-restores-without-a-restored-event",
        CheckpointChoice(record=DriverRecord(step=10, ledger=LEDGER)),
        10,
        Resume(step=10, resume_step=10, ledger_state=LEDGER, events=()),
    ),
    ResumeCase(
        "skipped-checkpoint-produces-checkpoint-skipped-before-the-restored-one",
        CheckpointChoice(record=DriverRecord(step=10, ledger=LEDGER), skipped=(skipped(20, "missing manifest"),)),
        22,
        Resume(
            step=10,
            resume_step=10,
            ledger_state=LEDGER,
            events=(
                skipped_event(20, "missing manifest"),
                ("restored", {"from_step": 22, "checkpoint_step": 10}),
            ),
        ),
    ),
]


@pytest.mark.parametrize("case", RESUME_CASES, ids=[c.id for c in RESUME_CASES])
def test_decide_resume(case: ResumeCase) -> None:
    assert decide_resume(case.choice, step=case.step) == case.expected


@pytest.mark.parametrize("strength", [0.025, 2, False, None])
def test_the_compression_strength_saved_with_a_checkpoint_comes_back_with_it(strength: float | bool | None) -> None:
    record = DriverRecord(step=10, ledger=LEDGER, compression_strength=strength)
    assert decide_resume(CheckpointChoice(record=record), step=10).compression_strength == strength


def test_a_record_written_before_strengths_were_saved_still_loads() -> None:
    record = DriverRecord(**{"step": 10, "ledger": LEDGER, "batches_committed": 3})
    assert decide_resume(CheckpointChoice(record=record), step=0).compression_strength is None


# -- decide_checkpoint_group -------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointCase:
    id: str
    step: int
    expected: str | None
    members: tuple[str, ...] = ("group3", "group1", "group2")
    interval: int = 5
    last_checkpoint: int = 0
    enabled: bool = True


CHECKPOINT_CASES = [
    CheckpointCase("multiple-of-the-interval-goes-to-the-first-member-in-sorted-order", 10, "group1"),
    CheckpointCase("first-interval-is-due", 5, "group1", last_checkpoint=0),
    CheckpointCase("sorted-order-is-by-name-not-insertion", 5, "a", members=("b", "c", "a")),
    CheckpointCase("single-member-saves-it", 5, "only", members=("only",)),
    CheckpointCase("step-between-multiples-is-not-due", 7, None),
    CheckpointCase("step-just-before-a-multiple-is-not-due", 9, None),
    CheckpointCase("step-zero-is-never-due", 0, None),
    # Independent of last_checkpoint (the driver starts it at 0, which alone would rule step 0 out).
    CheckpointCase("step-zero-is-not-a-positive-multiple-whatever-the-last-checkpoint", 0, None, last_checkpoint=-5),
    CheckpointCase("interval-zero-disables-checkpoints", 10, None, interval=0),
    CheckpointCase("no-store-disables-checkpoints", 10, None, enabled=False),
    CheckpointCase("step-already-checkpointed-is-not-saved-again", 10, None, last_checkpoint=10),
    CheckpointCase("step-behind-the-last-checkpoint-is-not-due", 10, None, last_checkpoint=15),
    CheckpointCase("next-multiple-past-the-last-checkpoint-is-due", 15, "group1", last_checkpoint=10),
    CheckpointCase("interval-of-one-checkpoints-every-new-step", 11, "group1", interval=1, last_checkpoint=10),
]


@pytest.mark.parametrize("case", CHECKPOINT_CASES, ids=[c.id for c in CHECKPOINT_CASES])
def test_decide_checkpoint_group(case: CheckpointCase) -> None:
    chosen = decide_checkpoint_group(
        case.members,
        step=case.step,
        interval=case.interval,
        last_checkpoint=case.last_checkpoint,
        enabled=case.enabled,
    )
    assert chosen == case.expected


def test_decide_checkpoint_group_accepts_a_quorum_mapping() -> None:
    """The driver passes its quorum (group -> QuorumInfo); its keys are the members."""
    members = {"g2": info("g2", 1, 2), "g1": info("g1", 1, 2)}
    assert decide_checkpoint_group(members, step=4, interval=2, last_checkpoint=2, enabled=True) == "g1"


# -- eval_due ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalCase:
    id: str
    step: int
    expected: bool
    interval: int = 10
    eval_samples: int = 64
    steps: int = 100


EVAL_CASES = [
    EvalCase("multiple-of-the-interval-is-due", 20, True),
    EvalCase("step-between-multiples-is-not-due", 21, False),
    EvalCase("last-step-is-due-off-the-interval", 95, True, steps=95),
    EvalCase("step-past-the-end-is-due", 101, True),
    EvalCase("step-just-before-the-end-off-the-interval-is-not-due", 94, False, steps=95),
    EvalCase("interval-zero-disables-evaluation-even-at-the-end", 100, False, interval=0),
    EvalCase("negative-interval-disables-evaluation", 100, False, interval=-10),
    EvalCase("no-held-out-samples-disables-evaluation", 20, False, eval_samples=0),
    EvalCase("no-held-out-samples-disables-evaluation-at-the-end", 100, False, eval_samples=0),
    EvalCase("interval-of-one-evaluates-every-step", 7, True, interval=1),
]


@pytest.mark.parametrize("case", EVAL_CASES, ids=[c.id for c in EVAL_CASES])
def test_eval_due(case: EvalCase) -> None:
    assert (
        eval_due(case.step, interval=case.interval, eval_samples=case.eval_samples, steps=case.steps) is case.expected
    )


# -- build_step_metrics and strength_sample ----------------------------------------------------------


def result(
    *,
    rank: int = 0,
    loss_sum: float = 0.0,
    tokens: int = 0,
    compute: float = 0.0,
    comm: float = 0.0,
    seconds: float = 1.0,
    extra: dict[str, float] | None = None,
) -> StepResult:
    return StepResult(
        group_id=f"group{rank // 2}",
        rank=rank % 2,
        step=3,
        committed=True,
        loss_sum=loss_sum,
        tokens=tokens,
        samples=tokens // 4,
        compute_seconds=compute,
        comm_seconds=comm,
        step_seconds=seconds,
        participants=2,
        extra=extra if extra is not None else {},
    )


@dataclass(frozen=True)
class MetricsCase:
    id: str
    results: tuple[StepResult, ...]
    expected: dict[str, Any]
    """StepMetrics fields checked (floats approximately)."""
    val_loss: float | None = None
    strength: Strength | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


METRICS_CASES = [
    MetricsCase(
        "loss-is-the-token-weighted-mean-not-the-mean-of-rank-means",
        (result(rank=0, loss_sum=30.0, tokens=10), result(rank=1, loss_sum=10.0, tokens=30)),
        {"loss": 1.0},  # mean of per-rank means would be (3 + 1/3) / 2
    ),
    MetricsCase(
        "no-tokens-does-not-divide-by-zero",
        (result(loss_sum=0.0, tokens=0),),
        {"loss": 0.0, "tokens_per_second": 0.0},
    ),
    MetricsCase(
        "tokens-per-second-uses-the-slowest-ranks-step-time",
        (result(rank=0, tokens=300, seconds=1.0), result(rank=1, tokens=100, seconds=4.0)),
        {"tokens_per_second": 100.0, "step_seconds": 4.0},
    ),
    MetricsCase(
        "zero-step-time-does-not-divide-by-zero",
        (result(tokens=5, seconds=0.0),),
        {"tokens_per_second": 5 / 1e-9, "step_seconds": 0.0},
    ),
    MetricsCase(
        "compute-and-comm-seconds-are-each-the-slowest-ranks",
        (result(rank=0, compute=2.0, comm=0.5), result(rank=1, compute=1.0, comm=0.75)),
        {"compute_seconds": 2.0, "comm_seconds": 0.75},
    ),
    MetricsCase(
        "world-size-counts-every-rank-and-groups-is-passed-through",
        tuple(result(rank=r, tokens=1) for r in range(6)),
        {"world_size": 6, "groups": 3},
        kwargs={"groups": 3},
    ),
    MetricsCase(
        "step-committed-and-wall-time-are-passed-through",
        (result(),),
        {"step": 8, "committed": False, "wall_time": 12.5},
        kwargs={"step": 8, "committed": False, "wall_time": 12.5},
    ),
    MetricsCase(
        "no-evaluation-has-no-val-loss-and-no-perplexity",
        (result(loss_sum=4.0, tokens=2),),
        {"val_loss": None, "perplexity": None},
    ),
    MetricsCase(
        "perplexity-is-exp-of-the-held-out-loss-not-the-training-loss",
        (result(loss_sum=40.0, tokens=10),),
        {"val_loss": 2.0, "perplexity": math.exp(2.0)},
        val_loss=2.0,
    ),
    MetricsCase(
        "perplexity-of-a-diverged-run-is-capped-via-max-log-perplexity",
        (result(),),
        {"val_loss": 1e6, "perplexity": math.exp(MAX_LOG_PERPLEXITY)},
        val_loss=1e6,
    ),
    MetricsCase(
        "perplexity-at-exactly-the-cap-is-not-changed",
        (result(),),
        {"perplexity": math.exp(MAX_LOG_PERPLEXITY)},
        val_loss=MAX_LOG_PERPLEXITY,
    ),
    MetricsCase(
        "zero-held-out-loss-is-evaluated-not-missing",
        (result(),),
        {"val_loss": 0.0, "perplexity": 1.0},
        val_loss=0.0,
    ),
    MetricsCase(
        "compression-bytes-are-summed-over-ranks-and-missing-counts-zero",
        (
            result(rank=0, extra={"compression_bytes_sent": 1000.0}),
            result(rank=1, extra={"compression_bytes_sent": 24.9}),
            result(rank=2),
        ),
        {"compression_bytes_sent": 1024},
    ),
    MetricsCase("no-codec-sends-no-compression-bytes", (result(),), {"compression_bytes_sent": 0}),
    MetricsCase("no-strength-is-none", (result(),), {"compression_strength": None}),
    MetricsCase("topk-ratio-strength-is-reported", (result(),), {"compression_strength": 0.125}, strength=0.125),
    MetricsCase("powersgd-rank-strength-is-a-float", (result(),), {"compression_strength": 4.0}, strength=4),
    MetricsCase("int8-off-strength-is-zero-not-none", (result(),), {"compression_strength": 0.0}, strength=False),
]


@pytest.mark.parametrize("case", METRICS_CASES, ids=[c.id for c in METRICS_CASES])
def test_build_step_metrics(case: MetricsCase) -> None:
    kwargs: dict[str, Any] = {"step": 4, "committed": True, "groups": 1, "wall_time": 1.0, **case.kwargs}
    metrics = build_step_metrics(list(case.results), val_loss=case.val_loss, strength=case.strength, **kwargs)
    actual = metrics.to_dict()
    for name, expected in case.expected.items():
        if isinstance(expected, float):
            assert actual[name] == pytest.approx(expected), name
        else:
            assert actual[name] == expected, name
            assert type(actual[name]) is type(expected), name


@dataclass(frozen=True)
class SampleCase:
    id: str
    results: tuple[StepResult, ...]
    expected: StepSample


SAMPLE_CASES = [
    SampleCase(
        "comm-fraction-is-the-mean-of-each-ranks-share-of-its-own-step",
        (result(rank=0, comm=1.0, seconds=2.0), result(rank=1, comm=1.0, seconds=4.0)),
        StepSample(comm_fraction=0.375),  # (1/2 + 1/4) / 2, not 2 / 6
    ),
    SampleCase(
        "ranks-without-step-time-are-left-out-of-the-comm-fraction",
        (result(rank=0, comm=1.0, seconds=4.0), result(rank=1, comm=3.0, seconds=0.0)),
        StepSample(comm_fraction=0.25),
    ),
    SampleCase(
        "no-rank-with-step-time-has-zero-comm-fraction",
        (result(rank=0, comm=1.0, seconds=0.0),),
        StepSample(comm_fraction=0.0),
    ),
    SampleCase(
        "residual-and-signal-are-summed-over-ranks-and-missing-counts-zero",
        (
            result(rank=0, comm=0.0, seconds=1.0, extra={"compression_residual_sq": 2.0, "compression_signal_sq": 8.0}),
            result(rank=1, comm=0.0, seconds=1.0, extra={"compression_residual_sq": 0.5}),
            result(rank=2, comm=0.0, seconds=1.0),
        ),
        StepSample(comm_fraction=0.0, residual_sq=2.5, signal_sq=8.0),
    ),
    SampleCase(
        "no-codec-reports-no-residual-or-signal",
        (result(comm=0.5, seconds=1.0),),
        StepSample(comm_fraction=0.5, residual_sq=0.0, signal_sq=0.0),
    ),
]


@pytest.mark.parametrize("case", SAMPLE_CASES, ids=[c.id for c in SAMPLE_CASES])
def test_strength_sample(case: SampleCase) -> None:
    sample = strength_sample(list(case.results))
    assert sample.comm_fraction == pytest.approx(case.expected.comm_fraction)
    assert sample.residual_sq == pytest.approx(case.expected.residual_sq)
    assert sample.signal_sq == pytest.approx(case.expected.signal_sq)


# -- decide_setup_give_up --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("errors", "limit", "says"),
    [
        ([], 3, None),
        (["group1: KeyError: 'x'", "group2: KeyError: 'x'"], 3, None),
        (
            ["group1: KeyError: 'x'", "group2: KeyError: 'x'", "group3: KeyError: 'x'"],
            3,
            "replica group set-up failed 3 times with no step committed: group3: KeyError: 'x'; "
            "fix what it names (the head's log has each traceback) and create the job again",
        ),
        (
            ["group1: OSError: disk full", "group2: KeyError: 'x'"],
            2,
            "replica group set-up failed 2 times with no step committed: group2: KeyError: 'x' "
            "(and 1 other error(s)); fix what it names (the head's log has each traceback) and create the job again",
        ),
        (["group1: KeyError: 'x'"] * 50, 0, None),
    ],
    ids=["none", "below-the-limit", "at-the-limit", "two-kinds-of-error", "limit-0-never-gives-up"],
)
def test_decide_setup_give_up(errors: list[str], limit: int, says: str | None) -> None:
    assert decide_setup_give_up(errors, limit=limit) == says


# -- decide_step_give_up, explain_error, decide_failing_report --------------------------------------------


@pytest.mark.parametrize(
    ("errors", "limit", "says"),
    [
        ([], 3, None),
        (["group1: RuntimeError: boom"] * 2, 3, None),
        (
            ["group1: RuntimeError: boom", "group2: RuntimeError: boom", "group3: RuntimeError: boom"],
            3,
            "replica group steps failed 3 times with no step committed: RuntimeError: boom; "
            "fix what it names (the head's log has the traceback) and create the job again",
        ),
        (
            ["group1: OSError: disk full", "group2: IndexError: index out of range in self"],
            2,
            "replica group steps failed 2 times with no step committed: a token id out of range of the embedding: "
            "check spec.trainer.model.vocabSize against the data and spec.trainer.data.tokenDtype "
            "(IndexError: index out of range in self) (and 1 other error(s)); "
            "fix what it names (the head's log has the traceback) and create the job again",
        ),
        (["group1: RuntimeError: boom"] * 50, 0, None),
    ],
    ids=["none", "below-the-limit", "at-the-limit", "index-error-in-words-and-two-kinds", "limit-0-never-gives-up"],
)
def test_decide_step_give_up(errors: list[str], limit: int, says: str | None) -> None:
    assert decide_step_give_up(errors, limit=limit) == says


@pytest.mark.parametrize(
    ("cause", "words"),
    [
        ("IndexError: index out of range in self", "a token id out of range of the embedding"),
        ("IndexError: list index out of range", "a token id out of range of the embedding"),
        ("IndexError: tuple index 3 is too big", None),
        ("KeyError: 'index out of range'", None),
    ],
    ids=["embedding", "any-index-out-of-range", "other-index-error-as-is", "other-type-as-is"],
)
def test_explain_error_words_only_what_it_recognises(cause: str, words: str | None) -> None:
    explained = explain_error(cause)
    if words is None:
        assert explained == cause
    else:
        assert explained.startswith(words) and explained.endswith(f"({cause})")


@pytest.mark.parametrize(
    ("consecutive", "reported", "threshold", "report"),
    [
        (FAILING_REPORT_LOSSES - 1, False, FAILING_REPORT_LOSSES, False),
        (FAILING_REPORT_LOSSES, False, FAILING_REPORT_LOSSES, True),
        (FAILING_REPORT_LOSSES + 5, True, FAILING_REPORT_LOSSES, False),
        (100, False, 0, False),
    ],
    ids=["below", "at-the-threshold", "once-per-run-of-losses", "threshold-0-never"],
)
def test_decide_failing_report(consecutive: int, reported: bool, threshold: int, report: bool) -> None:
    assert decide_failing_report(consecutive, reported=reported, threshold=threshold) is report
