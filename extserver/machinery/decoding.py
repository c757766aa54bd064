"""Decoding request bodies into versioned models: media types, GVK checks,
``fieldValidation`` (Strict / Warn / Ignore) for unknown and duplicate fields."""
from __future__ import annotations

import re

import json
import types
import typing
from functools import lru_cache
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from . import errors as E
from . import jsonscan, yamlscan


def parse_body(data: bytes, kind: str, into: str = "") -> tuple[Any, list[str]]:
    """Parse a JSON or YAML body (``kind``: "json", "yaml" or "apply") within the bounds of
    :mod:`.limits`; returns (document, duplicate-field paths). Failures are 400 with kube's
    words: ``error decoding YAML: ...`` for an apply patch, else the create handler's
    ``the object provided is unrecognized (must be of type <into>): ...``."""
    try:
        if kind == "yaml" or kind == "apply":
            return yamlscan.load_yaml(data), []
        return jsonscan.loads(data), _duplicates(data)
    except yaml.YAMLError as e:
        msg = yamlscan.yaml_error_text(e)
    except ValueError as e:  # a bound, or Go's JSON syntax error
        msg = str(e)
    if kind == "apply":
        raise E.BadRequest(f"error decoding YAML: error converting YAML to JSON: {msg}")
    if kind == "json":
        msg = f"couldn't get version/kind; json parse error: {msg}"
    raise E.BadRequest(f"the object provided is unrecognized (must be of type {into or 'Object'}): "
                       f"{msg} ({_summarize(data)})")


def _summarize(data: bytes, max_length: int = 30) -> str:
    """apiserver's ``summarizeData``: the start of the body, as text for a JSON object."""
    if not data:
        return "<empty>"
    if data[:1] == b"{":
        return data[:max_length].decode("utf-8", "replace") + (" ..." if len(data) > max_length else "")
    return data[:max_length].hex() + (" ..." if len(data) > max_length else "")


def _duplicates(data: bytes) -> list[str]:
    """Paths of duplicate keys (only checked when the bytes could hold one)."""
    dups: list[str] = []

    def hook(pairs):
        seen = set()
        for k, _ in pairs:
            if k in seen:
                dups.append(k)
            seen.add(k)
        return dict(pairs)

    # a cheap pre-check: most bodies are small; parse twice only then
    if len(data) > 1 << 20:
        return []
    json.loads(data.decode("utf-8", "replace"), object_pairs_hook=hook)  # depth already bounded
    return dups


# metav1.DeleteOptions members: (Python types, Go struct, Go type), for Go's type errors
_DELETE_OPTIONS = {
    "gracePeriodSeconds": (int, "DeleteOptions", "int64"),
    "preconditions": (dict, "DeleteOptions", "v1.Preconditions"),
    "orphanDependents": (bool, "DeleteOptions", "bool"),
    "propagationPolicy": (str, "DeleteOptions", "v1.DeletionPropagation"),
    "dryRun": (list, "DeleteOptions", "[]string"),
    "ignoreStoreReadErrorWithClusterBreakingPotential": (bool, "DeleteOptions", "bool"),
    "kind": (str, "DeleteOptions", "string"),
    "apiVersion": (str, "DeleteOptions", "string"),
}
_PRECONDITIONS = {"uid": (str, "Preconditions", "types.UID"), "resourceVersion": (str, "Preconditions", "string")}


def go_struct_field_error(value: Any, struct: str, field: str, go_type: str, *, integer: bool) -> str:
    """encoding/json's ``UnmarshalTypeError`` for a struct field: ``json: cannot unmarshal
    number into Go struct field FlunderSpec.spec.flunderReference of type string``; a number
    an integer field cannot hold is quoted (``number 1.5``)."""
    kind = jsonscan.JSON_KIND.get(type(value), "value")
    if kind == "number" and integer:
        kind = f"number {value!r}"
    return f"json: cannot unmarshal {kind} into Go struct field {struct}.{field} of type {go_type}"


def _go_type_mismatch(value: Any, want: type) -> bool:
    if value is None:
        return False  # null leaves a Go pointer nil
    if want is int:
        return type(value) is not int and not (type(value) is float and value.is_integer()
                                                and -2 ** 63 <= value < 2 ** 63)
    return not isinstance(value, want)


def decode_delete_options(doc: Any) -> dict:
    """A DeleteOptions body checked against the Go struct it decodes into: a member of the
    wrong JSON type is a 400 with ``encoding/json``'s message (the text kube's decoder
    gives), never a failure further on."""
    if not isinstance(doc, dict):
        raise E.BadRequest("the object provided is unrecognized: expected DeleteOptions")

    def check(members: dict, obj: dict, prefix: str) -> None:
        for name, (want, struct, go_type) in members.items():
            v = obj.get(name)
            if _go_type_mismatch(v, want):
                raise E.BadRequest(go_struct_field_error(v, struct, f"{prefix}{name}", go_type, integer=want is int))

    check(_DELETE_OPTIONS, doc, "")
    check(_PRECONDITIONS, doc.get("preconditions") or {}, "preconditions.")
    for v in doc.get("dryRun") or ():
        if not isinstance(v, str):
            raise E.BadRequest(f"json: cannot unmarshal {jsonscan.JSON_KIND.get(type(v), 'value')} into Go "
                               f"struct field DeleteOptions.dryRun of type string")
    return doc


@lru_cache(maxsize=None)
def _field_tree(model: type[BaseModel]) -> dict[str, Any]:
    """alias -> nested model class (or 'any' for free-form, or None for scalars)."""
    tree: dict[str, Any] = {}
    for name, f in model.model_fields.items():
        alias = f.alias or name
        tree[alias] = _shape(f.annotation)
    return tree


def _shape(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        shapes = [_shape(a) for a in typing.get_args(tp) if a is not type(None)]
        return shapes[0] if len(shapes) == 1 else "any"
    if origin in (list, tuple, set, frozenset):
        args = typing.get_args(tp)
        return ("list", _shape(args[0])) if args else "any"
    if origin is dict:
        return "any"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if tp.model_config.get("extra") == "allow":
            return "any"
        return tp
    if origin is typing.Annotated:
        return _shape(typing.get_args(tp)[0])
    return None


def unknown_fields(model: type[BaseModel], doc: Any, path: str = "") -> list[str]:
    """Paths of fields in ``doc`` that ``model`` does not declare."""
    out: list[str] = []
    if not isinstance(doc, dict):
        return out
    tree = _field_tree(model)
    for k, v in doc.items():
        p = f"{path}.{k}" if path else k
        if k not in tree:
            out.append(p)
            continue
        _walk(tree[k], v, p, out)
    return out


def _walk(shape: Any, v: Any, p: str, out: list[str]) -> None:
    if shape is None or shape == "any":
        return
    if isinstance(shape, tuple):
        if isinstance(v, list):
            for i, item in enumerate(v):
                _walk(shape[1], item, f"{p}[{i}]", out)
        return
    out.extend(unknown_fields(shape, v, p))


_VERSION_SUFFIX = re.compile(r"V\d+(?:(?:alpha|beta)\d+)?$")


def _go_type(tp: Any, version: str) -> str:
    """The Go type a pydantic annotation stands for, as encoding/json names it."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _go_type(typing.get_args(tp)[0], version)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _go_type(args[0], version) if len(args) == 1 else "interface {}"
    if origin is typing.Literal:
        return _go_type(type(typing.get_args(tp)[0]), version)
    if origin in (list, tuple, set):
        args = typing.get_args(tp)
        return "[]" + (_go_type(args[0], version) if args else "interface {}")
    if origin is dict:
        args = typing.get_args(tp)
        return "map[string]" + (_go_type(args[1], version) if len(args) == 2 else "interface {}")
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return f"{version}.{_go_struct_name(tp)}"
    return jsonscan.GO_TYPE.get(tp, "interface {}")


def _go_struct_name(model: type[BaseModel]) -> str:
    return _VERSION_SUFFIX.sub("", model.model_config.get("title") or model.__name__)


def go_unmarshal_error(model: type[BaseModel], doc: Any, loc: tuple, version: str) -> str | None:
    """encoding/json's ``UnmarshalTypeError`` text for a wrong JSON type at ``loc``, as a Go
    server decoding into typed structs words it (``json: cannot unmarshal number into Go
    struct field FlunderSpec.spec.flunderReference of type string``); None when ``loc`` does
    not lead to a declared field."""
    current, value, path = model, doc, []
    struct, field_type = None, None
    for part in loc:
        if isinstance(part, int):  # list index: not part of Go's field path; the element's type is
            value = value[part] if isinstance(value, list) and part < len(value) else None
            field_type = _element(field_type)
            continue
        if current is None and field_type is not None and _map_value(field_type) is not None:
            value = value.get(part) if isinstance(value, dict) else None  # a map key: not in the path either
            field_type = _map_value(field_type)
            current = _inner_model(field_type)
            continue
        if current is None or not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = next((f for n, f in current.model_fields.items() if (f.alias or n) == part or n == part), None)
        if info is None:
            return None
        struct, field_type = current, info.annotation
        path.append(info.alias or part)
        value = value.get(part) if isinstance(value, dict) else None
        current = _inner_model(field_type)
    if struct is None or value is None:
        return None
    go_type = _go_type(field_type, version)
    return go_struct_field_error(value, _go_struct_name(struct), ".".join(path), go_type,
                                 integer=go_type == "int64" and isinstance(value, float))


def _strip_optional(tp: Any) -> Any:
    """``X`` for ``Optional[X]`` / ``X | None`` (and Annotated); other annotations as they are."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
                continue
        return tp


def _element(tp: Any) -> Any:
    """The element type of a list field."""
    tp = _strip_optional(tp)
    if typing.get_origin(tp) in (list, tuple, set):
        args = typing.get_args(tp)
        return args[0] if args else Any
    return tp


def _map_value(tp: Any) -> Any:
    """The value type of a ``dict[str, X]`` field, else None."""
    tp = _strip_optional(tp)
    if typing.get_origin(tp) is dict:
        args = typing.get_args(tp)
        return args[1] if len(args) == 2 else None
    return None


def _inner_model(tp: Any) -> Any:
    """The model a field's values are (through Optional, list and dict), if any."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated or origin in (list, tuple, set) or \
                origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if not args:
                return None
            tp = args[0]
        elif origin is dict:
            args = typing.get_args(tp)
            tp = args[1] if len(args) == 2 else None
        else:
            return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def validation_message(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ()))
        parts.append(f"{loc}: {err.get('msg')}")
    return "; ".join(parts)


def decode_versioned(model: type[BaseModel], doc: dict, *, kind: str, version: str,
                     field_validation: str, dups: list[str]) -> tuple[BaseModel, list[str]]:
    """Validate ``doc`` into ``model``; returns (object, warnings). Raises 400 on type
    errors and, with Strict, on unknown or duplicate fields (kube's messages)."""
    warnings: list[str] = []
    if field_validation != "Ignore":
        problems = [f'unknown field "{p}"' for p in unknown_fields(model, doc)]
        problems += [f'duplicate field "{d}"' for d in dups]
        if problems:
            if field_validation == "Strict":
                raise E.BadRequest(f'{kind} in version "{version}" cannot be handled as a {kind}: '
                                   f'strict decoding error: {", ".join(problems)}')
            warnings.extend(problems)
    try:
        obj = model.model_validate(doc)
    except ValidationError as e:
        first = e.errors()[0]
        detail = None
        if first.get("type", "").endswith(("_type", "_parsing")) or first.get("type") in ("model_attributes_type",):
            detail = go_unmarshal_error(model, doc, tuple(first.get("loc", ())), version)
        raise E.BadRequest(f'{kind} in version "{version}" cannot be handled as a {kind}: '
                           f'{detail or validation_message(e)}') from None
    return obj, warnings
