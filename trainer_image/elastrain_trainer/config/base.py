"""The base every config and API model shares, and cross-field rules that run in two places.

Models here are the single source of truth for the TrainingJob schema: the CRD is generated from
their JSON schema. A cross-field rule is written once as a :class:`Rule` carrying both the CEL
expression the Kubernetes API server evaluates (``x-kubernetes-validations``) and the same check
in Python, so the trainer's local mode and the operator's parser reject exactly what
``kubectl apply`` rejects, with the same message.

Naming: snake_case in Python, camelCase in the serialized (Kubernetes) form.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

#: Error type of a violated :class:`Rule` in a pydantic ``ValidationError``; its ``ctx`` carries
#: ``field`` (the blamed field, relative to the model that owns the rule).
RULE_ERROR_TYPE = "cross_field_rule"


@dataclass(frozen=True, kw_only=True)
class Rule:
    """One cross-field rule: a CEL expression for the API server and the same check in Python.

    ``field`` is the camelCase path, relative to the model owning the rule, of the field the
    error is reported on ("" for the object itself). ``message`` says what is wrong and how to
    fix it; ``shows`` lists camelCase paths (relative to the object) whose values are appended
    to the message, by CEL's ``messageExpression`` and by Python alike.
    ``holds`` is None for transition rules (they compare with ``oldSelf``), which only the API
    server can check.
    """

    cel: str
    holds: Callable[[Any], bool] | None
    message: str
    field: str = ""
    shows: tuple[str, ...] = ()

    def to_validation(self) -> dict[str, str]:
        """Return the ``x-kubernetes-validations`` entry for this rule."""
        entry = {"rule": self.cel, "message": self.message}
        if self.shows:
            # format() rather than '+' on string(): the API server's cost estimator takes string() of a
            # number as unbounded and rejects concatenating it. A failing messageExpression (e.g. an
            # absent optional field) falls back to message.
            got = ", ".join(f"{path}=%s" for path in self.shows)
            template = json.dumps(f"{self.message.replace('%', '%%')} (got {got})")
            values = ", ".join(f"self.{path}" for path in self.shows)
            entry["messageExpression"] = f"{template}.format([{values}])"
        if self.field:
            entry["fieldPath"] = "." + self.field
            entry["reason"] = "FieldValueInvalid"
        return entry

    def explain(self, model: BaseModel) -> str:
        """Return the message for a model that violates the rule, with the values named in ``shows``."""
        if not self.shows:
            return self.message
        data = model.model_dump(mode="json", by_alias=True)
        got = ", ".join(f"{path}={_format(_lookup(data, path))}" for path in self.shows)
        return f"{self.message} (got {got})"


def _lookup(data: Mapping[str, Any], path: str) -> Any:
    value: Any = data
    for key in path.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _format(value: Any) -> str:
    """Format a value the way CEL's ``string()`` does, so both messages read the same."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _add_rules_to_schema(schema: dict[str, Any], cls: type) -> None:
    rules: tuple[Rule, ...] = getattr(cls, "rules", ())
    if rules:
        schema["x-kubernetes-validations"] = [rule.to_validation() for rule in rules]


class ConfigModel(BaseModel):
    """Base of every elastrain config and API model.

    Frozen values; camelCase aliases (the Kubernetes form) and snake_case attributes; unknown keys
    are errors; field docstrings become the schema's descriptions (and ``kubectl explain``'s).
    Subclasses list their cross-field rules in ``rules``.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
        json_schema_extra=_add_rules_to_schema,
    )

    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        for rule in type(self).rules:
            if rule.holds is not None and not rule.holds(self):
                raise PydanticCustomError(
                    RULE_ERROR_TYPE, "{detail}", {"detail": rule.explain(self), "field": rule.field}
                )
        return self
