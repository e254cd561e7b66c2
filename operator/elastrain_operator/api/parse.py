"""Turn a raw TrainingJob object (a Mapping from the API server or a YAML file) into the model.

The API server already enforces the CRD schema; this parser also catches what reached the
operator without it (objects stored before a CRD upgrade, manifests used outside a cluster) and
turns every problem into one message naming the field, the value and the fix, which the operator
puts in the job's Failed condition (reason InvalidSpec).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from elastrain_operator.api.constants import Reason
from elastrain_operator.api.resource import TrainingJob
from elastrain_trainer.config import RULE_ERROR_TYPE

#: At most this many problems are listed in one message (a condition message should stay readable).
MAX_LISTED_PROBLEMS = 5


class InvalidTrainingJobError(ValueError):
    """A TrainingJob that cannot run as written.

    ``problems`` holds (field path, offending value, explanation) for each problem; ``field`` and
    ``value`` are the first one's. The message lists them all.
    """

    reason = Reason.INVALID_SPEC

    def __init__(self, *, name: str, problems: Sequence[tuple[str, Any, str]]) -> None:
        self.name = name
        self.problems = tuple(problems)
        self.field, self.value, _ = self.problems[0]
        listed = [f"{field}: {text}" for field, _, text in self.problems[:MAX_LISTED_PROBLEMS]]
        more = len(self.problems) - len(listed)
        suffix = f"; and {more} more" if more > 0 else ""
        super().__init__(f"TrainingJob {name} is invalid: " + "; ".join(listed) + suffix)


def parse_trainingjob(obj: Mapping[str, Any]) -> TrainingJob:
    """Validate a TrainingJob object (camelCase keys) and return the model.

    Raises :class:`InvalidTrainingJobError` naming every invalid field, its value and the fix.
    """
    try:
        return TrainingJob.model_validate(obj, by_alias=True, by_name=False)
    except ValidationError as error:
        raise InvalidTrainingJobError(
            name=_name_of(obj), problems=[_problem(obj, detail) for detail in error.errors()]
        ) from error


def _name_of(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping):
        namespace, name = metadata.get("namespace"), metadata.get("name")
        if name:
            return f"{namespace}/{name}" if namespace else str(name)
    return "<unnamed>"


def _problem(obj: Mapping[str, Any], detail: ErrorDetails) -> tuple[str, Any, str]:
    """Return (field path, offending value, what is wrong, how to fix it and the value) for one pydantic error."""
    path = [str(part) for part in detail["loc"]]
    ctx = detail.get("ctx") or {}
    if detail["type"] == RULE_ERROR_TYPE:
        # A cross-field rule: blame the field the rule names, relative to the model that owns it.
        path += [part for part in str(ctx.get("field", "")).split(".") if part]
        return _join(path), _lookup(obj, path), str(ctx["detail"])
    value = detail.get("input")
    text = detail["msg"]
    if detail["type"] == "extra_forbidden":
        text = "unknown field; remove it or check its spelling (fields are camelCase)"
    elif detail["type"] == "missing":
        text = "required field is missing; set it"
    if not (value is None or isinstance(value, Mapping | list)):
        text += f" (got {value!r})"
    return _join(path), value, text


def _join(path: Sequence[str]) -> str:
    joined = ""
    for part in path:
        joined += f"[{part}]" if part.isdigit() else (f".{part}" if joined else part)
    return joined or "<root>"


def _lookup(obj: Mapping[str, Any], path: Sequence[str]) -> Any:
    value: Any = obj
    for part in path:
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value
