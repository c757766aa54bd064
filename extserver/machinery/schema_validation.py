"""A request body checked against its kind's OpenAPI schema, with kube's words.

Written by hand because the messages must be those a CRD's structural schema gives in
kube-apiserver: ``k8s.io/kube-openapi/pkg/validation`` (``spec.replicas in body should be
greater than or equal to 0``, ``... must be of type integer: "string"``) turned into field
errors as apiextensions-apiserver's ``kubeOpenAPIResultToFieldErrors`` does (``Required
value``, ``Unsupported value: "x": supported values: "a", "b"``, ``Too long``, ``Too many``,
``Invalid value``). The schema is the one served at ``/openapi/v2`` and ``/openapi/v3``, so
what ``kubectl explain`` shows is what is enforced.

The subset: ``type`` (+ ``format`` int32/int64), ``properties``, ``additionalProperties``,
``items``, ``required``, ``enum``, ``minimum``/``maximum`` (+ exclusive), ``multipleOf``,
``minLength``/``maxLength`` (in characters, as Go counts runes), ``pattern``,
``minItems``/``maxItems``, ``minProperties``/``maxProperties``, ``uniqueItems``,
``x-kubernetes-int-or-string``, ``x-kubernetes-preserve-unknown-fields`` and ``$ref``.
``null`` values of declared fields are not errors: as a CRD's, they are pruned (removed from
the document) before defaulting. The walk is iterative (documents may be as deep as the decode
bound allows)."""
from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any

import orjson

from .errors import FieldError, invalid, not_supported, required, too_long

IN = "body"


def _json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def _go_number(v: Any) -> str:
    """A bound as Go's ``%v`` prints a float64 (``0``, ``1.5``, ``1e+21``)."""
    f = float(v)
    if f.is_integer() and abs(f) < 1e21:
        return str(int(f))
    return repr(f)


def type_invalid(path: str, found: str, detail: str) -> FieldError:
    return FieldError("FieldValueTypeInvalid", path, found, detail)


def too_many(path: str, actual: int, maximum: int) -> FieldError:
    return FieldError("FieldValueTooMany", path, actual, f"must have at most {maximum} items")


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


class SchemaValidator:
    """Validates documents against ``definitions[root]`` (definitions as served, refs
    ``#/definitions/<name>`` or ``#/components/schemas/<name>``)."""

    def __init__(self, definitions: dict[str, dict], root: str, *, skip_top: tuple[str, ...] = (
            "apiVersion", "kind", "metadata")):
        self.definitions = definitions
        self.root = root
        self.skip_top = skip_top

    def _resolve(self, schema: dict) -> dict:
        seen = 0
        while "$ref" in schema and seen < 32:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = {**self.definitions.get(name, {}), **{k: v for k, v in schema.items() if k != "$ref"}}
            seen += 1
        if "allOf" in schema and len(schema["allOf"]) == 1:  # a described $ref
            schema = {**self._resolve(schema["allOf"][0]), **{k: v for k, v in schema.items() if k != "allOf"}}
        return schema

    def validate(self, doc: Any) -> list[FieldError]:
        """The field errors of ``doc`` (in kube-openapi's order); prunes its nulls in place."""
        errs: list[FieldError] = []
        stack: list[tuple[dict, Any, str, bool]] = [({"$ref": self.root}, doc, "", True)]
        while stack:
            schema, value, path, top = stack.pop()
            schema = self._resolve(schema)
            children = self._node(schema, value, path, top, errs)
            stack.extend(reversed(children))
        return errs

    # --- one node: its own checks, then the children to visit ------------------------
    def _node(self, s: dict, v: Any, path: str, top: bool, errs: list[FieldError]) -> list:
        if v is None:
            return []
        if s.get("x-kubernetes-int-or-string"):
            if not isinstance(v, (int, str)) or isinstance(v, bool):
                errs.append(type_invalid(path, _json_type(v), f"{path} in {IN} must be of type integer,string: "
                                                             f'"{_json_type(v)}"'))
                return []
        typ = s.get("type")
        if typ:
            found = _json_type(v)
            ok = found == typ or (typ == "number" and found == "integer") or (
                typ == "integer" and found == "number" and math.isfinite(v) and float(v).is_integer())
            if not ok:
                errs.append(type_invalid(path, found, f'{path} in {IN} must be of type {typ}: "{found}"'))
                return []
        if isinstance(v, str):
            self._string(s, v, path, errs)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            self._number(s, v, path, errs)
        if "enum" in s and v not in s["enum"]:
            values = [e if isinstance(e, str) else orjson.dumps(e).decode() for e in s["enum"]]
            errs.append(not_supported(path, v, values))
        if isinstance(v, list):
            return self._array(s, v, path, errs)
        if isinstance(v, dict):
            return self._object(s, v, path, top, errs)
        return []

    @staticmethod
    def _string(s: dict, v: str, path: str, errs: list[FieldError]) -> None:
        n = len(v)
        if "maxLength" in s and n > s["maxLength"]:
            errs.append(too_long(path, v, s["maxLength"]))
        if "minLength" in s and n < s["minLength"]:
            errs.append(invalid(path, v, f"{path} in {IN} should be at least {s['minLength']} chars long"))
        if "pattern" in s:
            rx = _compiled(s["pattern"])
            if rx is not None and rx.search(v) is None:
                errs.append(invalid(path, v, f"{path} in {IN} should match '{s['pattern']}'"))

    @staticmethod
    def _number(s: dict, v: float, path: str, errs: list[FieldError]) -> None:
        if "maximum" in s:
            m, exc = s["maximum"], s.get("exclusiveMaximum", False)
            if v > m or (exc and v == m):
                word = "less than" if exc else "less than or equal to"
                errs.append(invalid(path, v, f"{path} in {IN} should be {word} {_go_number(m)}"))
        if "minimum" in s:
            m, exc = s["minimum"], s.get("exclusiveMinimum", False)
            if v < m or (exc and v == m):
                word = "greater than" if exc else "greater than or equal to"
                errs.append(invalid(path, v, f"{path} in {IN} should be {word} {_go_number(m)}"))
        if "multipleOf" in s and s["multipleOf"]:
            q = v / s["multipleOf"]
            if not float(q).is_integer():
                errs.append(invalid(path, v, f"{path} in {IN} should be a multiple of {_go_number(s['multipleOf'])}"))

    def _array(self, s: dict, v: list, path: str, errs: list[FieldError]) -> list:
        n = len(v)
        if "minItems" in s and n < s["minItems"]:
            errs.append(invalid(path, n, f"{path} in {IN} should have at least {s['minItems']} items"))
        if "maxItems" in s and n > s["maxItems"]:
            errs.append(too_many(path, n, s["maxItems"]))
        if s.get("uniqueItems"):
            seen = set()
            for item in v:
                key = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
                if key in seen:
                    errs.append(invalid(path, "", f"{path} in {IN} shouldn't contain duplicates"))
                    break
                seen.add(key)
        items = s.get("items")
        if not isinstance(items, dict):
            return []
        return [(items, item, f"{path}[{i}]", False) for i, item in enumerate(v)]

    def _object(self, s: dict, v: dict, path: str, top: bool, errs: list[FieldError]) -> list:
        def child(k: str) -> str:
            return f"{path}.{k}" if path else k

        for k in s.get("required", ()):
            if (k not in v or v[k] is None) and not (top and k in self.skip_top):
                errs.append(required(child(k)))
        n = len(v)
        if "minProperties" in s and n < s["minProperties"]:
            errs.append(invalid(path, n, f"{path} in {IN} should have at least {s['minProperties']} properties"))
        if "maxProperties" in s and n > s["maxProperties"]:
            errs.append(too_many(path, n, s["maxProperties"]))
        props = s.get("properties") or {}
        extra = s.get("additionalProperties")
        out = []
        for k in [k for k, item in v.items() if item is None and (k in props or isinstance(extra, dict))
                  and not (top and k in self.skip_top)]:
            del v[k]  # pruned, as a CRD's null values are before defaulting (none is nullable)
        for k, item in v.items():
            if top and k in self.skip_top:
                continue  # ObjectMeta and the type fields have validation of their own
            if k in props:
                out.append((props[k], item, child(k), False))
            elif isinstance(extra, dict):
                out.append((extra, item, child(k), False))
            # unknown fields are fieldValidation's concern (pruned or refused before)
        return out
