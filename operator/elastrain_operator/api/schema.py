"""Turn a pydantic JSON schema into a Kubernetes structural OpenAPI v3 schema.

The API server accepts only structural schemas: every node has a type, no ``$ref``/``$defs``, no
``anyOf`` with null, boolean ``exclusiveMinimum``, no ``additionalProperties: false``. The
conversion:

- inlines every ``$ref``; the field's own description comes first, the model's after it;
- drops ``None`` from optional fields (they become "not required"; the API server prunes an
  explicit null, so "absent" is the only way to say "unset");
- turns ``int | str`` into ``x-kubernetes-int-or-string`` and open objects (``dict[str, Any]``,
  models with ``extra="allow"``) into ``x-kubernetes-preserve-unknown-fields``;
- drops nulls from defaults. Object defaults stay complete (every nested field spelled out) rather
  than ``{}``: the API server fills nested defaults at runtime, but when it validates a CRD it
  checks each default against the CEL rules as written, and ``{}`` fails every rule that reads a
  field ("no such key").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: Keys copied unchanged, in this order (readable YAML); anything else is an error.
_KEY_ORDER = (
    "description",
    "type",
    "format",
    "enum",
    "default",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "maxProperties",
    "required",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-validations",
    "items",
    "additionalProperties",
    "properties",
)
_DROPPED = frozenset({"title", "$defs"})
_INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]


class SchemaConversionError(ValueError):
    """The pydantic schema uses a construct that has no structural equivalent."""


def to_structural(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Convert a pydantic JSON schema (with ``$defs``) into a structural OpenAPI v3 schema."""
    return _convert(schema, schema.get("$defs", {}), "<root>")


def _convert(node: Mapping[str, Any], defs: Mapping[str, Any], where: str) -> dict[str, Any]:
    node = _resolve(node, defs, where)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "description":
            out[key] = _normalize_description(value)
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            # JSON schema 2020-12 gives the bound; OpenAPI v3.0 wants the bound plus a flag.
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "x-kubernetes-validations":
            out[key] = [_order_rule(rule) for rule in value]
        elif key == "default":
            if value is not None:
                out[key] = _drop_nulls(value)
        elif key == "properties":
            out[key] = {name: _convert(sub, defs, f"{where}.{name}") for name, sub in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs, f"{where}[]")
        elif key == "additionalProperties":
            if value is True:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(value, Mapping):
                out[key] = _convert(value, defs, f"{where}{{}}")
            # additionalProperties false: the structural schema already prunes unknown fields.
        elif key in _KEY_ORDER:
            out[key] = value
        else:
            raise SchemaConversionError(f"{where}: schema key {key!r} has no structural equivalent")
    if out.get("x-kubernetes-preserve-unknown-fields") and "type" not in out:
        out["type"] = "object"
    if "type" not in out and not out.get("x-kubernetes-int-or-string"):
        raise SchemaConversionError(f"{where}: no type in {dict(node)!r}")
    return {key: out[key] for key in _KEY_ORDER if key in out}


def _order_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    order = ("rule", "message", "messageExpression", "fieldPath", "reason")
    return {**{key: rule[key] for key in order if key in rule}, **rule}


def _resolve(node: Mapping[str, Any], defs: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """Inline ``$ref`` and collapse ``anyOf`` into one node; sibling keys (the field's) are kept."""
    siblings = {key: value for key, value in node.items() if key not in ("$ref", "anyOf")}
    if "$ref" in node:
        target = defs[str(node["$ref"]).removeprefix("#/$defs/")]
        return _merge(_resolve(target, defs, where), siblings)
    if "anyOf" in node:
        branches = [branch for branch in node["anyOf"] if branch != {"type": "null"}]
        if len(branches) == 1:
            return _merge(_resolve(branches[0], defs, where), siblings)
        if branches == _INT_OR_STRING:
            return {**siblings, "x-kubernetes-int-or-string": True}
        raise SchemaConversionError(f"{where}: a union of {branches!r} is not structural; use one type")
    return node


def _merge(target: Mapping[str, Any], field: Mapping[str, Any]) -> dict[str, Any]:
    merged = {**target, **field}
    if "description" in field and "description" in target and field["description"] != target["description"]:
        merged["description"] = f"{field['description']}\n\n{target['description']}"
    return merged


def _normalize_description(text: str) -> str:
    """Reflow docstring lines into paragraphs (kubectl explain wraps them itself)."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in paragraphs)


def _drop_nulls(value: Any) -> Any:
    """Remove None from a default: absent is how the schema says "unset"."""
    if isinstance(value, dict):
        return {key: _drop_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_drop_nulls(item) for item in value]
    return value
