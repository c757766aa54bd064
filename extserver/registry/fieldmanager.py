"""Server-side apply (``application/apply-patch+yaml``) with ``managedFields``.

Field sets are computed on the request version's wire form. Maps (structs, labels,
annotations) are granular; lists are atomic — what Kubernetes does for list fields that
declare no ``listType`` markers, which is every list of the bundled kinds. Ownership is
recorded for ``Apply`` operations; other writes keep ``managedFields`` as they are.
"""
from __future__ import annotations

import copy
from typing import Any, Iterable

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
    if isinstance(v, dict) and v:
        for k, c in v.items():
            _walk(c, path + (k,), out)
    else:
        out.add(path)


def to_fields_v1(paths: Iterable[Path]) -> dict:
    root: dict = {}
    for p in sorted(paths):
        node = root
        for k in p:
            node = node.setdefault("f:" + k, {})
    return root


def from_fields_v1(tree: dict | None, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for k, v in (tree or {}).items():
        if not k.startswith("f:"):
            continue
        p = prefix + (k[2:],)
        children = {ck: cv for ck, cv in (v or {}).items() if ck.startswith("f:")}
        if children:
            out |= from_fields_v1(children, p)
        else:
            out.add(p)
    return out


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
            base[k] = copy.deepcopy(v)
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
    result = copy.deepcopy(current) if current is not None else {}
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
                md[mk] = copy.deepcopy(md_applied[mk])
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
