"""Checking a bot's extraction schema (a JSON Schema of an object), and data against it. No Django here.

Schemas are checked against their own meta-schema (draft 2020-12 unless `$schema` names another). No
`$ref` is ever fetched: the validators resolve references only inside the schema itself.
"""
from __future__ import annotations

import json
from typing import Any

from jsonschema import exceptions, validators

MAX_SCHEMA_BYTES = 16 * 1024


def _where(path) -> str:
    return "/".join(str(part) for part in path) or "the top level"


def schema_problem(schema: Any) -> str | None:
    """What is wrong with `schema` as an extraction schema, in one sentence, or None."""
    if not isinstance(schema, dict):
        return "Must be a JSON Schema object, such as {\"type\": \"object\", \"properties\": {...}}."
    if len(json.dumps(schema)) > MAX_SCHEMA_BYTES:
        return f"Must be at most {MAX_SCHEMA_BYTES // 1024} KB."
    validator_class = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        validator_class.check_schema(schema)
    except exceptions.SchemaError as error:
        return f"Not a valid JSON Schema: {error.message} (at {_where(error.absolute_path)})."
    if schema.get("type") != "object":
        return 'Must describe an object: its top level needs "type": "object".'
    return None


def data_problem(instance: Any, schema: dict) -> str | None:
    """Why `instance` does not fit `schema` (the most relevant error), or None when it fits."""
    validator = validators.validator_for(schema, default=validators.Draft202012Validator)(schema)
    error = exceptions.best_match(validator.iter_errors(instance))
    if error is None:
        return None
    return f"{_where(error.absolute_path)}: {error.message}"
