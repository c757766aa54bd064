"""JSON Schemas of the custom and external metrics APIs' wire types, written from the Go types
of k8s.io/metrics (``pkg/apis/custom_metrics/v1beta1``, ``v1beta2``, ``external_metrics/v1beta1``)
and k8s.io/api's ``v1.ObjectReference`` / apimachinery's ``metav1.LabelSelector``,
``metav1.ListMeta``, ``metav1.Time`` and ``resource.Quantity``.

A field without ``omitempty`` in its json tag is ``required`` (Go always writes it, ``null``
for a nil pointer); unknown fields are refused, so a misspelt or misplaced field fails."""
from __future__ import annotations

import jsonschema

TIME = {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"}
QUANTITY = {"type": "string", "pattern": r"^[+-]?[0-9.]+([eEinumkKMGTP]*[-+]?[0-9]*)$"}
INT64 = {"type": "integer", "minimum": -(2 ** 63), "maximum": 2 ** 63 - 1}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}

OBJECT_REFERENCE = {  # v1.ObjectReference: every field omitempty
    "type": "object", "additionalProperties": False,
    "properties": {k: {"type": "string"} for k in
                   ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")},
}
LABEL_SELECTOR = {  # *metav1.LabelSelector (nil -> null)
    "type": ["object", "null"], "additionalProperties": False,
    "properties": {
        "matchLabels": STRING_MAP,
        "matchExpressions": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["key", "operator"],
            "properties": {"key": {"type": "string"},
                           "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                           "values": {"type": "array", "items": {"type": "string"}}}}},
    },
}
LIST_META = {
    "type": "object", "additionalProperties": False,
    "properties": {"selfLink": {"type": "string"}, "resourceVersion": {"type": "string"},
                   "continue": {"type": "string"}, "remainingItemCount": INT64},
}
TYPE_META = {"kind": {"type": "string"}, "apiVersion": {"type": "string"}}  # inline, omitempty

METRIC_VALUE_V1BETA1 = {
    "type": "object", "additionalProperties": False,
    "required": ["describedObject", "metricName", "timestamp", "value", "selector"],
    "properties": {**TYPE_META, "describedObject": OBJECT_REFERENCE, "metricName": {"type": "string"},
                   "timestamp": TIME, "window": INT64, "value": QUANTITY, "selector": LABEL_SELECTOR},
}
METRIC_VALUE_V1BETA2 = {
    "type": "object", "additionalProperties": False,
    "required": ["describedObject", "metric", "timestamp", "value"],
    "properties": {**TYPE_META, "describedObject": OBJECT_REFERENCE,
                   "metric": {"type": "object", "additionalProperties": False, "required": ["name", "selector"],
                              "properties": {"name": {"type": "string"}, "selector": LABEL_SELECTOR}},
                   "timestamp": TIME, "windowSeconds": INT64, "value": QUANTITY},
}
EXTERNAL_METRIC_VALUE = {
    "type": "object", "additionalProperties": False,
    "required": ["metricName", "metricLabels", "timestamp", "value"],
    "properties": {**TYPE_META, "metricName": {"type": "string"},
                   "metricLabels": {"type": ["object", "null"], "additionalProperties": {"type": "string"}},
                   "timestamp": TIME, "window": INT64, "value": QUANTITY},
}


def _list(kind: str, api_version: str, item: dict) -> dict:
    return {"type": "object", "additionalProperties": False, "required": ["kind", "apiVersion", "metadata", "items"],
            "properties": {"kind": {"const": kind}, "apiVersion": {"const": api_version}, "metadata": LIST_META,
                           "items": {"type": "array", "items": item}}}


SCHEMAS = {
    "custom.metrics.k8s.io/v1beta1": _list("MetricValueList", "custom.metrics.k8s.io/v1beta1", METRIC_VALUE_V1BETA1),
    "custom.metrics.k8s.io/v1beta2": _list("MetricValueList", "custom.metrics.k8s.io/v1beta2", METRIC_VALUE_V1BETA2),
    "external.metrics.k8s.io/v1beta1": _list("ExternalMetricValueList", "external.metrics.k8s.io/v1beta1",
                                             EXTERNAL_METRIC_VALUE),
}


def validate(doc: dict, group_version: str) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``doc`` has the Go type's exact shape."""
    jsonschema.validate(doc, SCHEMAS[group_version], cls=jsonschema.Draft202012Validator)
