"""Exports asked for on a running job: what the operator's progress poll asks, and what the answer means.

A user runs ``kubectl annotate tj NAME elastrain.dev/export-request=ID``. Each round,
:func:`decide_export_ask` says whether the poll of the head names ``ID`` (``GET /progress?exportRequest=ID``)
or the request is refused (no ``spec.export``, or an id the head cannot take); the head's driver
writes ``<export location>/step-<N>`` at the next step boundary and reports it in the progress report.
:func:`export_request_status` turns that into ``status.exportRequest``; :func:`export_request_notes`
into one Event per answered id. An id already answered (in ``status.exportRequest``) is never asked again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from elastrain_operator.api.constants import EXPORT_REQUEST_ANNOTATION, Reason
from elastrain_operator.api.status import ExportRequestState, ExportRequestStatus
from elastrain_trainer.config.progress import MAX_REQUEST_ID, ProgressReport, valid_request_id

#: (type, reason, message) of an Event.
EventNote = tuple[str, Reason, str]


@dataclass(frozen=True)
class ExportAsk:
    """This round's answer to a pending request: the id to name on the poll, or the refusal to record."""

    ask: str | None = None
    refused: ExportRequestStatus | None = None


def requested_id(annotations: Mapping[str, str] | None) -> str | None:
    """The export request id the job's annotation names (stripped), or None."""
    value = (annotations or {}).get(EXPORT_REQUEST_ANNOTATION, "").strip()
    return value or None


def decide_export_ask(requested: str | None, *, has_export: bool, prior: ExportRequestStatus | None) -> ExportAsk:
    """Ask the head for ``requested`` until it is answered; refuse it if the job cannot export it."""
    if requested is None or (prior is not None and prior.request_id == requested):
        return ExportAsk()
    if not has_export:
        message = (
            f"metadata.annotations[{EXPORT_REQUEST_ANNOTATION}]={requested!r}: this job has no spec.export, "
            "so it has nowhere to write a model; set spec.export (uri or pvc) when creating the job"
        )
    elif not valid_request_id(requested):
        message = (
            f"metadata.annotations[{EXPORT_REQUEST_ANNOTATION}]={requested[:64]!r}: not a valid request id; "
            f"use 1-{MAX_REQUEST_ID} printable characters without spaces"
        )
    else:
        return ExportAsk(ask=requested)
    refused = ExportRequestStatus(request_id=requested[:253], state=ExportRequestState.REFUSED, message=message)
    return ExportAsk(refused=refused)


def export_request_status(
    prior: ExportRequestStatus | None, ask: ExportAsk, report: ProgressReport | None
) -> ExportRequestStatus | None:
    """``status.exportRequest``: the refusal, the head's answer to the id asked, or what it was."""
    if ask.refused is not None:
        return ask.refused
    answer = report.export_request if report is not None else None
    if ask.ask is None or answer is None or answer.request_id != ask.ask:
        return prior
    if answer.path is not None:
        return ExportRequestStatus(
            request_id=answer.request_id, state=ExportRequestState.EXPORTED, path=answer.path, step=answer.step
        )
    return ExportRequestStatus(
        request_id=answer.request_id, state=ExportRequestState.FAILED, step=answer.step, message=answer.error
    )


def export_request_notes(prior: ExportRequestStatus | None, new: ExportRequestStatus | None) -> tuple[EventNote, ...]:
    """One Event when ``status.exportRequest`` answers a new id."""
    if new is None or (prior is not None and (prior.request_id, prior.state) == (new.request_id, new.state)):
        return ()
    if new.state is ExportRequestState.EXPORTED:
        text = f"export request {new.request_id!r}: the model at step {new.step} was written to {new.path}"
        return (("Normal", Reason.EXPORTED_ON_REQUEST, text),)
    if new.state is ExportRequestState.FAILED:
        text = f"export request {new.request_id!r} failed at step {new.step}: {new.message}; training goes on"
        return (("Warning", Reason.EXPORT_REQUEST_FAILED, text),)
    return (("Warning", Reason.EXPORT_REQUEST_REFUSED, new.message or "export request refused"),)
