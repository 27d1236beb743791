"""A small JSON Schema checker (the commonly used part of draft 2020-12): type, enum, const,
properties, required, additionalProperties, items, minItems/maxItems, minLength/maxLength,
pattern, minimum/maximum/exclusiveMinimum/exclusiveMaximum, anyOf/oneOf/allOf/not. Enough to gate an
agent's JSON answer; every problem is reported with its JSON path."""

from __future__ import annotations

import re
from typing import Any

_TYPES = {
    "object": lambda v: isinstance(v, dict), "array": lambda v: isinstance(v, list), "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool) or isinstance(v, float) and v.is_integer(),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "boolean": lambda v: isinstance(v, bool), "null": lambda v: v is None,
}


def problems(value: Any, schema: Any, path: str = "$") -> list[str]:
    if schema is True or schema == {}:
        return []
    if schema is False:
        return [f"{path}: no value is allowed here"]
    if not isinstance(schema, dict):
        return [f"{path}: the schema is not an object"]
    out: list[str] = []
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(_TYPES.get(t, lambda v: False)(value) for t in names):
            return [f"{path}: expected {' or '.join(names)}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{path}: {value!r} is not one of {schema['enum']!r}")
    if "const" in schema and value != schema["const"]:
        out.append(f"{path}: must be {schema['const']!r}")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                out.append(f"{path}: {name!r} is required")
        props = schema.get("properties", {})
        for name, sub in props.items():
            if name in value:
                out += problems(value[name], sub, f"{path}.{name}")
        extra = schema.get("additionalProperties", True)
        for name in value:
            if name not in props:
                if extra is False:
                    out.append(f"{path}: unexpected property {name!r}")
                elif isinstance(extra, dict):
                    out += problems(value[name], extra, f"{path}.{name}")
    if isinstance(value, list):
        if "items" in schema:
            for i, item in enumerate(value):
                out += problems(item, schema["items"], f"{path}[{i}]")
        if len(value) < schema.get("minItems", 0):
            out.append(f"{path}: at least {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append(f"{path}: at most {schema['maxItems']} items")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            out.append(f"{path}: at least {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            out.append(f"{path}: at most {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.append(f"{path}: does not match {schema['pattern']!r}")
    if _TYPES["number"](value):
        for key, ok in (("minimum", lambda v, b: v >= b), ("maximum", lambda v, b: v <= b), ("exclusiveMinimum", lambda v, b: v > b), ("exclusiveMaximum", lambda v, b: v < b)):
            if key in schema and not ok(value, schema[key]):
                out.append(f"{path}: {key} {schema[key]}")
    for sub in schema.get("allOf", []):
        out += problems(value, sub, path)
    if "anyOf" in schema and not any(not problems(value, s, path) for s in schema["anyOf"]):
        out.append(f"{path}: matches none of anyOf")
    if "oneOf" in schema and sum(1 for s in schema["oneOf"] if not problems(value, s, path)) != 1:
        out.append(f"{path}: must match exactly one of oneOf")
    if "not" in schema and not problems(value, schema["not"], path):
        out.append(f"{path}: must not match the 'not' schema")
    return out
