"""Decoding patch bodies as kube's patch handler does."""
from __future__ import annotations

from typing import Any

from ..jsonscan import JSON_KIND, loads, loads_strict, type_error
from ..validation import go_quote
from .errors import _bad_request

_OP_FIELDS = ("op", "path", "from", "value")


def decode_json_patch(body: bytes, *, strict: bool = False) -> tuple[list[Any], list[str]]:
    """Decode an ``application/json-patch+json`` body as kube does.

    ``strict`` is ``fieldValidation`` Strict or Warn: kube then first decodes into its own
    op struct, reporting unknown/duplicate op fields as strict errors (returned, each like
    ``json patch unknown field "[0].foo"``; kube rejects them with 422 under Strict and
    warns under Warn) and prefixing decode failures with ``error decoding patch: ``.
    Raises :class:`PatchError` (400) for a body that is not a list of objects.
    """
    strict_errors: list[str] = []
    try:
        if strict:
            ops, dups = loads_strict(body)
            if ops is not None and not isinstance(ops, list):
                raise ValueError(type_error(ops, "[]handlers.jsonPatchOp"))
            for i, op in enumerate(ops or ()):
                if op is None:
                    continue
                if not isinstance(op, dict):
                    raise ValueError(type_error(op, "handlers.jsonPatchOp"))
                for f in ("op", "path", "from"):
                    v = op.get(f)
                    if v is not None and not isinstance(v, str):
                        raise ValueError(f"json: cannot unmarshal {JSON_KIND[type(v)]} into Go struct field "
                                         f"jsonPatchOp.{f} of type string")
                strict_errors.extend("json patch unknown field " + go_quote(f"[{i}].{k}")
                                     for k in op if k not in _OP_FIELDS)
            strict_errors.extend("json patch " + d for d in dups)
        else:
            ops = loads(body)
    except ValueError as e:
        raise _bad_request(f"error decoding patch: {e}" if strict else str(e)) from None
    if ops is None:
        return [], strict_errors
    if not isinstance(ops, list):
        raise _bad_request(type_error(ops, "jsonpatch.Patch"))
    for op in ops:
        if op is not None and not isinstance(op, dict):
            raise _bad_request(type_error(op, "jsonpatch.Operation"))
    return ops, strict_errors


def decode_merge_patch(body: bytes, *, strict: bool = False) -> tuple[Any, list[str]]:
    """Decode an ``application/merge-patch+json`` body as kube does.

    Returns the patch and, with ``strict``, ``duplicate field "..."`` strict errors.
    Raises :class:`PatchError` 400 ``Invalid JSON Patch`` for malformed JSON, ``null`` or a
    scalar (with ``strict``: ``error decoding patch: ...`` for anything but an object or null).
    An array is returned as is: the merge result is then that array, which kube fails to
    decode into the object (a 422 ``Invalid`` on field ``patch``, the caller's concern).
    """
    strict_errors: list[str] = []
    if strict:
        try:
            patch, strict_errors = loads_strict(body)
            if patch is not None and not isinstance(patch, dict):
                raise ValueError(type_error(patch, "map[string]interface {}"))
        except ValueError as e:
            raise _bad_request(f"error decoding patch: {e}") from None
    else:
        try:
            patch = loads(body)
        except ValueError:
            raise _bad_request("Invalid JSON Patch") from None
    if patch is None or not isinstance(patch, (dict, list)):
        raise _bad_request("Invalid JSON Patch")
    return patch, strict_errors


def decode_strategic_merge_patch(body: bytes, *, strict: bool = False) -> tuple[dict, list[str]]:
    """Decode an ``application/strategic-merge-patch+json`` body (must be an object or
    ``null``); 400 with Go's decoder message otherwise. Returns (patch, strict errors)."""
    try:
        if strict:
            patch, strict_errors = loads_strict(body)
        else:
            patch, strict_errors = loads(body), []
        if patch is not None and not isinstance(patch, dict):
            raise ValueError(type_error(patch, "map[string]interface {}"))
    except ValueError as e:
        raise _bad_request(str(e)) from None
    return patch or {}, strict_errors
