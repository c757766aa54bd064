"""The metrics APIs' shared wire pieces: query parsing as the list handlers parse it, and
the JSON forms of ``metav1.Time``, ``metav1.LabelSelector`` and ``v1.ObjectReference``
exactly as Go's encoder writes them (field order and ``omitempty`` of k8s.io/api)."""
from __future__ import annotations

import datetime as _dt
import functools
from typing import Mapping

from ..machinery import errors as E
from ..machinery.quantity import Quantity
from ..machinery.selectors import DOES_NOT_EXIST, DOUBLE_EQUALS, EQUALS, EXISTS, IN, NOT_EQUALS, NOT_IN, \
    LabelSelector
from .metrics_api import ObjectReference


def parse_label_selector(query: Mapping[str, str], param: str) -> LabelSelector:
    """``labelSelector`` / ``metricLabelSelector`` of a request: absent or empty selects
    everything; a bad one is a 400 with ``labels.Parse``'s message."""
    s = query.get(param, "")
    if not s:
        return LabelSelector.everything()
    try:
        return LabelSelector.parse(s)
    except ValueError as e:  # as the list handler words it
        msg = str(e)
        raise E.BadRequest(msg if "unable to parse" in msg else f"unable to parse requirement: {msg}") from None


@functools.lru_cache(maxsize=64)  # the items of one answer mostly share their timestamp
def time_str(ts: _dt.datetime) -> str:
    """``metav1.Time``: RFC 3339 in UTC, whole seconds (a naive datetime is taken as UTC)."""
    if ts.tzinfo is not None:
        ts = ts.astimezone(_dt.timezone.utc)
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=8192, typed=True)
def _number_str(v) -> str:
    return str(Quantity.coerce(v))


def quantity_str(v) -> str:
    """The canonical string of a Quantity, a quantity string or a number (numbers and
    strings, which sources repeat a lot, are parsed once)."""
    if isinstance(v, Quantity):
        return str(v)
    return _number_str(v)


def object_reference(ref: ObjectReference) -> dict:
    """``v1.ObjectReference``: kind, namespace, name, apiVersion, each omitted when empty."""
    if ref.kind and ref.name and ref.api_version:  # the usual case, without the tests
        if ref.namespace:
            return {"kind": ref.kind, "namespace": ref.namespace, "name": ref.name, "apiVersion": ref.api_version}
        return {"kind": ref.kind, "name": ref.name, "apiVersion": ref.api_version}
    d = {}
    if ref.kind:
        d["kind"] = ref.kind
    if ref.namespace:
        d["namespace"] = ref.namespace
    if ref.name:
        d["name"] = ref.name
    if ref.api_version:
        d["apiVersion"] = ref.api_version
    return d


def label_selector_dict(sel: LabelSelector) -> dict | None:
    """``metav1.ParseToLabelSelector(sel.String())`` as the adapters fill ``selector``: None
    for an empty selector; ``=``/``==`` become ``matchLabels``, the rest ``matchExpressions``
    (``!=`` is ``NotIn``); ``>``/``<`` have no LabelSelector form and are left out."""
    if sel.empty:
        return None
    labels: dict[str, str] = {}
    exprs: list[dict] = []
    ops = {IN: "In", NOT_IN: "NotIn", NOT_EQUALS: "NotIn", EXISTS: "Exists", DOES_NOT_EXIST: "DoesNotExist"}
    for r in sel.requirements:
        if r.operator in (EQUALS, DOUBLE_EQUALS):
            labels[r.key] = r.values[0]
        elif r.operator in ops:
            e: dict = {"key": r.key, "operator": ops[r.operator]}
            if r.values:
                e["values"] = sorted(r.values)
            exprs.append(e)
    d: dict = {}
    if labels:
        d["matchLabels"] = labels
    if exprs:
        d["matchExpressions"] = exprs
    return d
