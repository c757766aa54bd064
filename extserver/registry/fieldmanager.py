"""Server-side apply (``application/apply-patch+yaml``) with ``managedFields``.

Field sets are computed on the request version's wire form. Maps (structs, labels,
annotations) are granular; lists are atomic — what Kubernetes does for list fields that
declare no ``listType`` markers, which is every list of the bundled kinds. Ownership is
recorded for ``Apply`` operations; other writes keep ``managedFields`` as they are.

Documents here were bounded in depth where they were decoded (``machinery.limits``); the
walks over field paths are iterative anyway, and a ``fieldsV1`` that is not the nested
objects it should be is read as far as it is well-formed, never failing the request.
"""
from __future__ import annotations

from typing import Any, Iterable

import orjson

from ..machinery import errors as E
from ..machinery.meta import now_rfc3339

Path = tuple[str, ...]
_META_MANAGED = ("labels", "annotations", "finalizers", "ownerReferences")
_TOP_SKIP = ("apiVersion", "kind", "metadata", "status")


def leaf_paths(doc: dict, *, include_status: bool = False) -> set[Path]:
    """The fields an applied configuration sets (its leaves; lists are atomic)."""
    out: set[Path] = set()
    for k, v in doc.items():
        if k in ("apiVersion", "kind") or (k == "status" and not include_status):
            continue
        if k == "metadata":
            for mk in _META_MANAGED:
                if mk in (v or {}):
                    _walk(v[mk], ("metadata", mk), out)
            continue
        _walk(v, (k,), out)
    return out


def _walk(v: Any, path: Path, out: set[Path]) -> None:
    stack = [(v, path)]
    while stack:
        v, path = stack.pop()
        if isinstance(v, dict) and v:
            stack.extend((c, path + (k,)) for k, c in v.items())
        else:
            out.add(path)


def to_fields_v1(paths: Iterable[Path]) -> dict:
    root: dict = {}
    for p in sorted(paths):
        node = root
        for k in p:
            node = node.setdefault("f:" + k, {})
    return root


def from_fields_v1(tree: Any) -> set[Path]:
    """The leaf paths a ``fieldsV1`` tree names (``f:<name>`` members; anything that is not
    an object counts as a leaf)."""
    out: set[Path] = set()
    stack: list[tuple[Any, Path]] = [(tree, ())]
    while stack:
        node, prefix = stack.pop()
        if not isinstance(node, dict):
            continue
        for k, v in node.items():
            if not isinstance(k, str) or not k.startswith("f:"):
                continue
            p = prefix + (k[2:],)
            if isinstance(v, dict) and any(isinstance(ck, str) and ck.startswith("f:") for ck in v):
                stack.append((v, p))
            else:
                out.add(p)
    return out


def _copy(v: Any) -> Any:
    """A deep copy of a JSON value (orjson: no Python recursion)."""
    return orjson.loads(orjson.dumps(v)) if isinstance(v, (dict, list)) else v


def _get(doc: Any, path: Path) -> Any:
    for k in path:
        if not isinstance(doc, dict) or k not in doc:
            return _MISSING
        doc = doc[k]
    return doc


def _delete(doc: dict, path: Path) -> None:
    parents = []
    node: Any = doc
    for k in path[:-1]:
        if not isinstance(node, dict) or k not in node:
            return
        parents.append((node, k))
        node = node[k]
    if isinstance(node, dict):
        node.pop(path[-1], None)
    # drop maps the removal emptied (not the object's top-level fields' own containers)
    for parent, k in reversed(parents):
        if parent[k] == {} and len(parents) > 1:
            parent.pop(k)
        else:
            break


_MISSING = object()


def _merge(base: dict, applied: dict) -> dict:
    for k, v in applied.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = _copy(v)
    return base


def _overlaps(a: Path, b: Path) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def apply(current: dict | None, applied: dict, *, manager: str, api_version: str, force: bool,
          group: str, resource: str, name: str, subresource: str = "") -> dict:
    """The object after ``manager`` applies ``applied`` to ``current`` (None: create).

    Raises a 409 ``Conflict`` listing the fields other managers own with different values,
    unless ``force`` (then their ownership moves to ``manager``)."""
    include_status = subresource == "status"
    new_set = leaf_paths(applied, include_status=include_status)
    entries = [dict(e) for e in ((current or {}).get("metadata", {}).get("managedFields") or [])]
    mine = next((e for e in entries if e.get("manager") == manager and e.get("operation") == "Apply"
                 and (e.get("subresource") or "") == subresource), None)
    old_set = from_fields_v1(mine.get("fieldsV1")) if mine else set()
    result = _copy(current) if current is not None else {}
    if current is not None:
        conflicts: list[tuple[Path, str, str]] = []
        for e in entries:
            if e is mine:
                continue
            owned = from_fields_v1(e.get("fieldsV1"))
            hit = {p for p in new_set for q in owned if _overlaps(p, q) and _get(current, q) is not _MISSING
                   and _get(current, p) != _get(applied, p)}
            if not hit:
                continue
            if force:
                e["fieldsV1"] = to_fields_v1({q for q in owned if not any(_overlaps(q, p) for p in hit)})
            else:
                conflicts += [(p, e.get("manager", ""), e.get("apiVersion", "")) for p in sorted(hit)]
        if conflicts:
            raise _conflict_error(conflicts, group, resource, name)
        others = set().union(*(from_fields_v1(e.get("fieldsV1")) for e in entries if e is not mine)) \
            if entries else set()
        for p in old_set - new_set:
            if not any(_overlaps(p, q) for q in others):
                _delete(result, p)
    md_applied = applied.get("metadata") or {}
    body = {k: v for k, v in applied.items() if k not in ("metadata",)}
    _merge(result, body)
    md = result.setdefault("metadata", {})
    for mk in _META_MANAGED:
        if mk in md_applied:
            if isinstance(md_applied[mk], dict) and isinstance(md.get(mk), dict):
                _merge(md[mk], md_applied[mk])
            else:
                md[mk] = _copy(md_applied[mk])
    for k in ("name", "namespace", "generateName"):
        if k in md_applied and k not in md:
            md[k] = md_applied[k]
    entry = {"manager": manager, "operation": "Apply", "apiVersion": api_version, "time": now_rfc3339(),
             "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(new_set)}
    if subresource:
        entry["subresource"] = subresource
    entries = [e for e in entries if e is not mine and from_fields_v1(e.get("fieldsV1"))] + [entry]
    md["managedFields"] = entries
    return result


def _conflict_error(conflicts: list[tuple[Path, str, str]], group: str, resource: str, name: str) -> E.StatusError:
    def field(p: Path) -> str:
        return "." + ".".join(p)

    n = len(conflicts)
    if n == 1:
        p, mgr, av = conflicts[0]
        msg = f'Apply failed with 1 conflict: conflict with "{mgr}" using {av}: {field(p)}'
    else:
        lines = "\n".join(f'- conflict with "{mgr}" using {av}: {field(p)}' for p, mgr, av in conflicts)
        msg = f"Apply failed with {n} conflicts: {lines}"
    return E.StatusError(msg, code=409, reason="Conflict", name=name, group=group, kind=resource,
                         causes=[E.Cause("FieldManagerConflict", f'conflict with "{mgr}" using {av}', field(p))
                                 for p, mgr, av in conflicts])
