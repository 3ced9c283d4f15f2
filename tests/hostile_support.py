"""Requests built from the app's OpenAPI document with one hostile value injected: for every
operation, a valid-ish JSON body (every property, optional ones too) with one free-text field
replaced, or one string query, path or header parameter replaced (see test_hostile_input)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from tests.sweep_requests import schema_string

NUL: Final = "ok\u0000ok"
# Secrets that are only hashed, never stored as text: they keep every character (models.text).
NOT_TEXT: Final = frozenset({"password"})


@dataclass
class Injected:
    """One request: where the hostile value went (`loc` as FastAPI reports it)."""

    method: str
    path: str
    url: str
    loc: list[str | int]
    body: Any = None
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """For failure messages."""
        return f"{self.method} {self.url} loc={self.loc}"


class Spec:
    """The OpenAPI document and valid-ish values for its schemas."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self._spec = spec
        self._schemas: dict[str, Any] = spec["components"]["schemas"]

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Follow `$ref`s and take the first non-null branch of an `anyOf`."""
        while True:
            if "$ref" in schema:
                schema = self._schemas[schema["$ref"].rsplit("/", 1)[1]]
            elif "anyOf" in schema:
                options = [self.resolve(s) for s in schema["anyOf"]]
                schema = next(s for s in options if s.get("type") != "null")
            else:
                return schema

    def valid(self, schema: dict[str, Any]) -> Any:
        """A value that satisfies the schema (objects get every property)."""
        schema = self.resolve(schema)
        if "enum" in schema:
            return schema["enum"][0]
        kind = schema.get("type")
        if kind == "object":
            return {k: self.valid(v) for k, v in schema.get("properties", {}).items()}
        if kind == "array":
            count = max(int(schema.get("minItems", 1)), 1)
            return [self.valid(schema.get("items", {})) for _ in range(count)]
        if kind == "boolean":
            return True
        if kind in ("integer", "number"):
            return schema.get("minimum", 1)
        return schema_string(schema)

    def free_text(self, schema: dict[str, Any], loc: list[str | int]) -> Iterator[list[str | int]]:
        """The locations of every free-text string (no enum, no uuid/date-time format)."""
        schema = self.resolve(schema)
        kind = schema.get("type")
        if kind == "object":
            for name, sub in schema.get("properties", {}).items():
                yield from self.free_text(sub, [*loc, name])
        elif kind == "array":
            yield from self.free_text(schema.get("items", {}), [*loc, 0])
        elif kind == "string" and "enum" not in schema and "format" not in schema:
            yield loc

    def injections(self) -> Iterator[Injected]:
        """Every operation once per free-text field or string parameter, with NUL there."""
        for path, item in self._spec["paths"].items():
            for method, op in item.items():
                yield from self._operation(method.upper(), path, op)

    def _operation(self, method: str, path: str, op: dict[str, Any]) -> Iterator[Injected]:
        params = op.get("parameters", [])
        url = path
        for param in params:
            if param["in"] == "path":
                url = url.replace("{" + param["name"] + "}", str(uuid.uuid4()))
        content = op.get("requestBody", {}).get("content", {})
        body_schema = content.get("application/json", {}).get("schema")
        body = self.valid(body_schema) if body_schema else None
        if body_schema is not None:
            for loc in self.free_text(body_schema, []):
                yield Injected(method, path, url, ["body", *loc], body=_replace(body, loc, NUL))
        for param in params:
            schema = self.resolve(param.get("schema", {}))
            if schema.get("type") != "string" or "enum" in schema or "format" in schema:
                continue
            where, name = param["in"], param["name"]
            call = Injected(method, path, url, [where, name], body=body)
            if where == "query":
                call.params[name] = NUL
            elif where == "header":
                call.headers[name] = NUL
            else:
                call.url = path.replace("{" + name + "}", NUL)
            yield call


def _replace(value: Any, loc: list[str | int], new: Any) -> Any:
    if not loc:
        return new
    head, rest = loc[0], loc[1:]
    if isinstance(value, dict):
        return {**value, str(head): _replace(value[head], rest, new)}
    copy = list(value)
    copy[int(head)] = _replace(copy[int(head)], rest, new)
    return copy
