"""JSON Schema validation that fills `default` values and reports pointers a user can follow."""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators

from higress_ops.config.errors import Problem, pointer
from higress_ops.paths import data_path

DOCUMENT_SCHEMA = "schemas/mcp-server.schema.json"


def _fill_defaults(
    validator: Any, properties: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    # Set defaults before descending, so nested objects created from a default get their own defaults too.
    if isinstance(instance, dict):
        for name, sub in properties.items():
            if isinstance(sub, Mapping) and "default" in sub and name not in instance:
                instance[name] = copy.deepcopy(sub["default"])
    yield from Draft202012Validator.VALIDATORS["properties"](validator, properties, instance, schema)


DefaultingValidator = validators.extend(Draft202012Validator, {"properties": _fill_defaults})


def check_schema(schema: Mapping[str, Any], *, origin: str) -> None:
    """Reject a broken schema where it is registered, not when a user's config hits it."""
    try:
        Draft202012Validator.check_schema(schema)
    except Exception as exc:  # jsonschema.SchemaError; message names the bad keyword
        raise ValueError(f"{origin}: not a valid JSON Schema (draft 2020-12): {exc}") from exc


@cache
def load_schema(relative: str) -> Mapping[str, Any]:
    """A schema file shipped with the package (`schemas/...`), parsed once."""
    path: Path = data_path(relative)
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    check_schema(schema, origin=str(path))
    return schema


def validate(instance: Any, schema: Mapping[str, Any], *, base: tuple[str | int, ...] = ()) -> list[Problem]:
    """Validate in place (filling defaults) and return every problem, pointers prefixed with `base`."""
    problems: list[Problem] = []
    for error in DefaultingValidator(schema).iter_errors(instance):
        problems.extend(_problems(error, base))
    return sorted(set(problems), key=_order)


def _order(problem: Problem) -> tuple[list[str], str]:
    return problem.pointer.split("/"), problem.message


SECRET_KEYS = frozenset({"password", "istiodToken", "secret"})
_MAX_MESSAGE = 300


def _message(error: ValidationError, path: tuple[str | int, ...]) -> str:
    """The validator's message, without a secret's value and without kilobytes of echoed input."""
    message = error.message
    if path and path[-1] in SECRET_KEYS:
        message = message.replace(repr(error.instance), "<hidden>")
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    return message


def _problems(error: ValidationError, at: tuple[str | int, ...]) -> Iterator[Problem]:
    path = (*at, *error.absolute_path)
    kind = error.validator
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    if kind == "required":
        required: Any = error.validator_value
        missing = next((p for p in required if f"{p!r} is a required property" == error.message), None)
        yield Problem(pointer((*path, missing)) if missing is not None else pointer(path), error.message)
    elif kind == "additionalProperties" and isinstance(error.instance, Mapping):
        allowed = sorted(schema.get("properties", {}))
        for key in sorted(k for k in error.instance if k not in allowed):
            hint = difflib.get_close_matches(str(key), allowed, n=1)
            guess = f"; did you mean {hint[0]!r}?" if hint else f"; allowed keys: {', '.join(allowed)}"
            yield Problem(pointer((*path, key)), f"unknown key {key!r}{guess}")
    elif kind in ("pattern", "not") and "errorMessage" in schema:
        shown = "<hidden>" if path and path[-1] in SECRET_KEYS else repr(error.instance)
        yield Problem(pointer(path), f"{shown} {schema['errorMessage']}")
    else:
        yield Problem(pointer(path), _message(error, path))
