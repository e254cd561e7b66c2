"""When the driver stops restarting groups whose set-up keeps raising, and what it then says.

A group whose set-up raised (a checkpoint of another model, a data file missing on the workers)
is lost and started again, like one whose node died. An error of the trainer's own would come back
every time, and the job would stay Running with no step taken and nothing in ``kubectl``. So after
``limit`` set-up errors with no step committed in between, the driver stops with an error that
quotes them; the head writes it to its termination log and the operator into the job's Failed
condition. While steps commit, a node whose groups keep failing costs only its own share.

Groups that became ready do not reset the count: when the checkpoint cannot be loaded, groups
started without it (to heal from a peer) do get ready, then find the trained state lost, and the
driver tries the checkpoint again. Only a committed step is progress.
"""

from __future__ import annotations


class GroupSetupError(RuntimeError):
    """Replica groups keep failing to set up; the message says why and what to do."""


def decide_setup_give_up(errors: list[str], *, limit: int) -> str | None:
    """The message to stop with once ``errors`` (since the last committed step) reach ``limit``, else None."""
    if limit <= 0 or len(errors) < limit:
        return None
    distinct = list(dict.fromkeys(e.split(": ", 1)[-1] for e in errors))
    return (
        f"replica group set-up failed {len(errors)} times with no step committed: "
        f"{errors[-1]}"
        + (f" (and {len(distinct) - 1} other error(s))" if len(distinct) > 1 else "")
        + "; fix what it names (the head's log has each traceback) and create the job again"
    )
