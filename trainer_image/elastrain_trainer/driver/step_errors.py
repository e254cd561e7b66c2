"""When the driver stops restarting groups whose steps keep raising, and when it reports a failing node.

A group whose ``quorum`` or ``train`` call raised (an out-of-range token id in the embedding, a
model that cannot run its forward) is lost and started again, like one whose node died. An error of
the user's input comes back every time: the job would stay Running at step 0 with the accelerators
busy. So, like set-up errors (:mod:`~elastrain_trainer.driver.setup_errors`), after ``limit`` step
errors with no step committed in between the driver stops with an error quoting the last one; the
head writes it to its termination log and the operator into the job's Failed condition.

While steps commit, a group that keeps failing costs only its own share; after
``FAILING_REPORT_LOSSES`` consecutive losses on one node (none of its groups committed a step in
between) the driver reports it once (a ``group_failing`` event, a warning in the head's log and an
Event on the job). A process that died (its node lost, a signal) is not an error of this kind.
"""

from __future__ import annotations

#: Consecutive losses of a node's groups (no commit in between) after which the node is reported.
FAILING_REPORT_LOSSES = 3

#: Words for errors whose Python text does not say what the user did wrong: (type, text in message) -> words.
_EXPLAINED = (
    (
        "IndexError",
        "index out of range",
        "a token id out of range of the embedding: check spec.trainer.model.vocabSize against the data "
        "and spec.trainer.data.tokenDtype",
    ),
)


class StepFailureError(RuntimeError):
    """Replica groups keep failing their steps; the message quotes the error and says what to do."""


def explain_error(cause: str) -> str:
    """``cause`` (``Type: first line``) with what it means in words, when the Python text does not say."""
    for kind, text, words in _EXPLAINED:
        if cause.startswith(f"{kind}:") and text in cause:
            return f"{words} ({cause})"
    return cause


def decide_step_give_up(errors: list[str], *, limit: int) -> str | None:
    """The message to stop with once ``errors`` (``group: Type: line``, since the last commit) reach ``limit``."""
    if limit <= 0 or len(errors) < limit:
        return None
    last = errors[-1].split(": ", 1)[-1]
    distinct = {e.split(": ", 1)[-1] for e in errors}
    return (
        f"replica group steps failed {len(errors)} times with no step committed: {explain_error(last)}"
        + (f" (and {len(distinct) - 1} other error(s))" if len(distinct) > 1 else "")
        + "; fix what it names (the head's log has the traceback) and create the job again"
    )


def decide_failing_report(consecutive: int, *, reported: bool, threshold: int = FAILING_REPORT_LOSSES) -> bool:
    """Whether a node whose groups were lost ``consecutive`` times in a row is reported now (once per run of losses)."""
    return not reported and threshold > 0 and consecutive >= threshold
