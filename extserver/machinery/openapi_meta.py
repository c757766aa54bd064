"""Hand-written OpenAPI definitions of the standard ``k8s.io/apimachinery`` types.

Every served kind refers to these (``metadata`` is an ``ObjectMeta``, lists carry a
``ListMeta``, deletes take ``DeleteOptions`` and answer ``Status`` ...). Their shape
(property names, types, formats, ``required``, list/map extensions) follows the
definitions kube-apiserver publishes, so clients and the kube-aggregator see the
same structure; the descriptions are our own wording.

Definitions are stored in the *internal* form used by :mod:`extserver.openapi`:
references are ``{"$ref": "#/definitions/<name>"}`` possibly with sibling keywords
(``description``, ``default``), and ``default`` values are kept. The renderer turns
this into OpenAPI v2 (defaults pruned) or v3 (``#/components/schemas`` refs, refs with
siblings wrapped in ``allOf``), as kube-openapi does.
"""
from __future__ import annotations

import copy
from typing import Any

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
OBJECT_META = META + "ObjectMeta"
LIST_META = META + "ListMeta"
MANAGED_FIELDS_ENTRY = META + "ManagedFieldsEntry"
OWNER_REFERENCE = META + "OwnerReference"
TIME = META + "Time"
FIELDS_V1 = META + "FieldsV1"
STATUS = META + "Status"
STATUS_DETAILS = META + "StatusDetails"
STATUS_CAUSE = META + "StatusCause"
DELETE_OPTIONS = META + "DeleteOptions"
PRECONDITIONS = META + "Preconditions"
WATCH_EVENT = META + "WatchEvent"
API_RESOURCE_LIST = META + "APIResourceList"
API_RESOURCE = META + "APIResource"
API_GROUP = META + "APIGroup"
GROUP_VERSION_FOR_DISCOVERY = META + "GroupVersionForDiscovery"
SERVER_ADDRESS_BY_CLIENT_CIDR = META + "ServerAddressByClientCIDR"
PATCH = META + "Patch"
RAW_EXTENSION = "io.k8s.apimachinery.pkg.runtime.RawExtension"
SCALE = "io.k8s.api.autoscaling.v1.Scale"
SCALE_SPEC = "io.k8s.api.autoscaling.v1.ScaleSpec"
SCALE_STATUS = "io.k8s.api.autoscaling.v1.ScaleStatus"

#: Prefix of references in the internal form (the OpenAPI v2 spelling).
REF_PREFIX = "#/definitions/"

API_VERSION_DESCRIPTION = (
    "APIVersion is the versioned schema of this representation of an object, as "
    "\"group/version\". Servers convert recognised schemas to their latest internal "
    "value and may reject unrecognised ones. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"
)
KIND_DESCRIPTION = (
    "Kind is the CamelCase name of the REST resource this object represents. Servers may "
    "infer it from the endpoint the request is sent to. Cannot be updated. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
)
OBJECT_METADATA_DESCRIPTION = (
    "Standard object's metadata. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
LIST_METADATA_DESCRIPTION = (
    "Standard list metadata. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
)


def ref(name: str, **siblings: Any) -> dict[str, Any]:
    """A reference to definition ``name`` in internal form, with optional sibling keywords."""
    return {"$ref": REF_PREFIX + name, **siblings}


def _string(description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "type": "string", **extra}


def _integer(description: str, fmt: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "type": "integer", "format": fmt, **extra}


def _boolean(description: str) -> dict[str, Any]:
    return {"description": description, "type": "boolean"}


def _string_list(description: str, list_type: str | None = "atomic") -> dict[str, Any]:
    schema: dict[str, Any] = {
        "description": description,
        "type": "array",
        "items": {"default": "", "type": "string"},
    }
    if list_type:
        schema["x-kubernetes-list-type"] = list_type
    return schema


def _string_map(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "type": "object",
        "additionalProperties": {"default": "", "type": "string"},
    }


def _ref_list(description: str, item: str, *, item_default: bool = True) -> dict[str, Any]:
    """An atomic list of ``item`` objects.

    kube publishes ``default: {}`` on such items; it is left out when ``item`` has
    required properties, where ``{}`` would not validate against the item schema.
    """
    return {
        "description": description,
        "type": "array",
        "items": ref(item, default={}) if item_default else ref(item),
        "x-kubernetes-list-type": "atomic",
    }


def _type_meta() -> dict[str, dict[str, Any]]:
    return {
        "apiVersion": _string(API_VERSION_DESCRIPTION),
        "kind": _string(KIND_DESCRIPTION),
    }


_RESOURCE_VERSION_DESCRIPTION = (
    "An opaque string identifying the server's internal version of this object; clients "
    "use it for optimistic concurrency, change detection and watches, and must pass it "
    "back unmodified. Populated by the system. Read-only."
)

_DEFINITIONS: dict[str, dict[str, Any]] = {
    OBJECT_META: {
        "description": "ObjectMeta is the metadata every persisted resource has, including "
        "all objects users create.",
        "type": "object",
        "properties": {
            "annotations": _string_map(
                "Annotations is an unstructured key/value map that external tools may use to "
                "store and retrieve arbitrary metadata. Not queryable."
            ),
            "creationTimestamp": ref(
                TIME,
                description="CreationTimestamp is the server time at which this object was "
                "created, in RFC3339 form and UTC. Clients may not set it. Populated by the "
                "system. Read-only.",
            ),
            "deletionGracePeriodSeconds": _integer(
                "Number of seconds the object has to terminate gracefully before it is "
                "removed. Only set together with deletionTimestamp; may only be shortened. "
                "Read-only.",
                "int64",
            ),
            "deletionTimestamp": ref(
                TIME,
                description="DeletionTimestamp is the RFC 3339 time at which this resource "
                "will be deleted. The server sets it when a graceful deletion is requested; "
                "the object stays visible until its finalizers list is empty. Read-only.",
            ),
            "finalizers": _string_list(
                "Finalizers must all be removed before the object is deleted from the "
                "registry. Each entry names a component responsible for removing it; once "
                "deletionTimestamp is set, entries can only be removed.",
                list_type="set",
            )
            | {"x-kubernetes-patch-strategy": "merge"},
            "generateName": _string(
                "GenerateName is an optional prefix the server uses to generate a unique "
                "name when Name is not provided; a random suffix is appended."
            ),
            "generation": _integer(
                "A sequence number for a specific generation of the desired state. "
                "Populated by the system. Read-only.",
                "int64",
            ),
            "labels": _string_map(
                "Labels is a map of string keys and values used to organise and select "
                "objects."
            ),
            "managedFields": _ref_list(
                "ManagedFields records, per workflow (field manager) and version, the set "
                "of fields that workflow manages. Mostly for internal housekeeping.",
                MANAGED_FIELDS_ENTRY,
            ),
            "name": _string(
                "Name must be unique within a namespace. It is required when creating "
                "resources unless generateName is used. Cannot be updated."
            ),
            "namespace": _string(
                "Namespace is the space within which the name must be unique. Empty for "
                "cluster-scoped objects. Must be a DNS_LABEL. Cannot be updated."
            ),
            "ownerReferences": {
                "description": "List of objects this object depends on. When all of them are "
                "deleted, this object is garbage collected. At most one entry may be a "
                "managing controller.",
                "type": "array",
                "items": ref(OWNER_REFERENCE),
                "x-kubernetes-list-map-keys": ["uid"],
                "x-kubernetes-list-type": "map",
                "x-kubernetes-patch-merge-key": "uid",
                "x-kubernetes-patch-strategy": "merge",
            },
            "resourceVersion": _string(_RESOURCE_VERSION_DESCRIPTION),
            "selfLink": _string(
                "Deprecated: selfLink is a legacy read-only field that is no longer populated."
            ),
            "uid": _string(
                "UID is the unique in time and space value for this object, generated by "
                "the server on creation and never changed. Populated by the system. Read-only."
            ),
        },
    },
    LIST_META: {
        "description": "ListMeta is the metadata of synthetic resources such as lists.",
        "type": "object",
        "properties": {
            "continue": _string(
                "Continue is set when a limit was given and more items are available; pass "
                "it back unmodified to retrieve the next chunk of the same consistent list."
            ),
            "remainingItemCount": _integer(
                "The estimated number of items not yet returned in a chunked list. Unset "
                "when selectors are used or the list is complete.",
                "int64",
            ),
            "resourceVersion": _string(_RESOURCE_VERSION_DESCRIPTION),
            "selfLink": _string(
                "Deprecated: selfLink is a legacy read-only field that is no longer populated."
            ),
        },
    },
    MANAGED_FIELDS_ENTRY: {
        "description": "ManagedFieldsEntry is a field manager, a field set and the group "
        "version of the resource that field set applies to.",
        "type": "object",
        "properties": {
            "apiVersion": _string(
                "APIVersion (\"group/version\") of the resource this field set applies to."
            ),
            "fieldsType": _string(
                "FieldsType is the format of the field set. The only value is \"FieldsV1\"."
            ),
            "fieldsV1": ref(FIELDS_V1, description="FieldsV1 holds the field set in the "
                            "\"FieldsV1\" format."),
            "manager": _string("Manager identifies the workflow managing these fields."),
            "operation": _string(
                "Operation that created this entry: \"Apply\" or \"Update\"."
            ),
            "subresource": _string(
                "Subresource through which the object was updated, or empty for the main "
                "resource."
            ),
            "time": ref(TIME, description="Time at which this entry was last changed."),
        },
    },
    OWNER_REFERENCE: {
        "description": "OwnerReference identifies an owning object, which is in the same "
        "namespace as the dependent or cluster-scoped.",
        "type": "object",
        "properties": {
            "apiVersion": _string("API version of the referent.", default=""),
            "blockOwnerDeletion": _boolean(
                "If true and the owner has the \"foregroundDeletion\" finalizer, the owner "
                "is not deleted until this reference is removed."
            ),
            "controller": _boolean("If true, this reference points to the managing controller."),
            "kind": _string("Kind of the referent.", default=""),
            "name": _string("Name of the referent.", default=""),
            "uid": _string("UID of the referent.", default=""),
        },
        "required": ["apiVersion", "kind", "name", "uid"],
        "x-kubernetes-map-type": "atomic",
    },
    TIME: {
        "description": "Time is a timestamp serialised as an RFC 3339 string.",
        "type": "string",
        "format": "date-time",
    },
    FIELDS_V1: {
        "description": "FieldsV1 is a set of fields in a trie-like JSON structure (keys "
        "'f:<name>', 'v:<value>', 'i:<index>', 'k:<keys>' or '.'), as defined by "
        "sigs.k8s.io/structured-merge-diff.",
        "type": "object",
    },
    STATUS: {
        "description": "Status is the result of a call that does not return another object.",
        "type": "object",
        "properties": {
            **_type_meta(),
            "code": _integer("Suggested HTTP status code, 0 if not set.", "int32"),
            "details": ref(
                STATUS_DETAILS,
                description="Extended data associated with the reason; its content depends "
                "on the reason.",
            ),
            "message": _string("A human-readable description of the status of this operation."),
            "metadata": ref(LIST_META, default={}, description=LIST_METADATA_DESCRIPTION),
            "reason": _string(
                "A machine-readable description of why this operation is in the \"Failure\" "
                "status. It clarifies the HTTP status code but does not override it."
            ),
            "status": _string("Status of the operation: \"Success\" or \"Failure\"."),
        },
    },
    STATUS_DETAILS: {
        "description": "StatusDetails is additional information the server may attach to a "
        "Status; which attributes are set depends on the Status reason.",
        "type": "object",
        "properties": {
            "causes": _ref_list(
                "Causes gives more detail about the failure, e.g. one entry per invalid field.",
                STATUS_CAUSE,
            ),
            "group": _string("Group of the resource the status is about."),
            "kind": _string("Kind of the resource the status is about."),
            "name": _string("Name of the resource the status is about, when there is one."),
            "retryAfterSeconds": _integer(
                "If set, the number of seconds to wait before retrying the operation.", "int32"
            ),
            "uid": _string("UID of the resource the status is about, when there is one."),
        },
    },
    STATUS_CAUSE: {
        "description": "StatusCause is one reason for a Status failure.",
        "type": "object",
        "properties": {
            "field": _string(
                "The field that caused the error, as a JSON path such as \"spec.items[0].name\"."
            ),
            "message": _string("A human-readable description of the cause."),
            "reason": _string("A machine-readable description of the cause."),
        },
    },
    DELETE_OPTIONS: {
        "description": "DeleteOptions may be provided when deleting an API object.",
        "type": "object",
        "properties": {
            **_type_meta(),
            "dryRun": _string_list(
                "When present, modifications are not persisted. The only valid value is "
                "\"All\": every dry-run stage is processed."
            ),
            "gracePeriodSeconds": _integer(
                "Seconds before the object is deleted; must be non-negative, zero means "
                "immediately. Unset uses the type's default.",
                "int64",
            ),
            "orphanDependents": _boolean(
                "Deprecated: use propagationPolicy. Whether dependents are orphaned."
            ),
            "preconditions": ref(
                PRECONDITIONS,
                description="Must be satisfied before the deletion is carried out, otherwise "
                "409 Conflict is returned.",
            ),
            "propagationPolicy": _string(
                "Whether and how garbage collection is performed: 'Orphan', 'Background' or "
                "'Foreground'."
            ),
        },
    },
    PRECONDITIONS: {
        "description": "Preconditions must be fulfilled before an operation is carried out.",
        "type": "object",
        "properties": {
            "resourceVersion": _string("The required resourceVersion."),
            "uid": _string("The required UID."),
        },
    },
    WATCH_EVENT: {
        "description": "WatchEvent is one event of a watch stream.",
        "type": "object",
        "properties": {
            "object": ref(
                RAW_EXTENSION,
                description="The object: its new state for ADDED and MODIFIED, its last "
                "state for DELETED, a Status for ERROR, and an object carrying only the "
                "resourceVersion for BOOKMARK.",
            ),
            "type": {"default": "", "type": "string"},
        },
        "required": ["type", "object"],
    },
    RAW_EXTENSION: {
        "description": "RawExtension holds an arbitrary embedded object (with its own "
        "apiVersion and kind).",
        "type": "object",
    },
    API_RESOURCE_LIST: {
        "description": "APIResourceList lists the resources served in one group version and "
        "whether they are namespaced.",
        "type": "object",
        "properties": {
            **_type_meta(),
            "groupVersion": _string(
                "groupVersion is the group and version this list is for.", default=""
            ),
            "resources": _ref_list("resources lists the served resources.", API_RESOURCE,
                                   item_default=False),
        },
        "required": ["groupVersion", "resources"],
    },
    API_RESOURCE: {
        "description": "APIResource describes one served resource.",
        "type": "object",
        "properties": {
            "categories": _string_list(
                "categories are the groups of resources this resource belongs to (e.g. 'all')."
            ),
            "group": _string(
                "group is the preferred group of the resource; empty means the group of the "
                "containing list."
            ),
            "kind": _string("kind is the kind of the resource.", default=""),
            "name": _string("name is the plural name of the resource.", default=""),
            "namespaced": {
                "default": False,
                "description": "namespaced tells whether the resource is namespaced.",
                "type": "boolean",
            },
            "shortNames": _string_list("shortNames are suggested short names of the resource."),
            "singularName": _string(
                "singularName is the singular name of the resource.", default=""
            ),
            "storageVersionHash": _string(
                "An opaque hash of the storage version of the resource; only equality "
                "comparison is meaningful."
            ),
            "verbs": {
                "description": "verbs are the supported kube verbs (get, list, watch, create, "
                "update, patch, delete, deletecollection, proxy).",
                "type": "array",
                "items": {"default": "", "type": "string"},
            },
            "version": _string(
                "version is the preferred version of the resource; empty means the version "
                "of the containing list."
            ),
        },
        "required": ["name", "singularName", "namespaced", "kind", "verbs"],
    },
    API_GROUP: {
        "description": "APIGroup describes an API group: its name and served versions.",
        "type": "object",
        "properties": {
            **_type_meta(),
            "name": _string("name is the name of the group.", default=""),
            "preferredVersion": ref(
                GROUP_VERSION_FOR_DISCOVERY,
                description="preferredVersion is the version clients should use.",
            ),
            "serverAddressByClientCIDRs": _ref_list(
                "Maps client CIDRs to the server address clients in them should use.",
                SERVER_ADDRESS_BY_CLIENT_CIDR,
                item_default=False,
            ),
            "versions": _ref_list("versions are the versions served in this group.",
                                  GROUP_VERSION_FOR_DISCOVERY, item_default=False),
        },
        "required": ["name", "versions"],
    },
    GROUP_VERSION_FOR_DISCOVERY: {
        "description": "GroupVersionForDiscovery names one served version of a group.",
        "type": "object",
        "properties": {
            "groupVersion": _string("groupVersion as \"group/version\".", default=""),
            "version": _string("version as \"version\".", default=""),
        },
        "required": ["groupVersion", "version"],
    },
    SERVER_ADDRESS_BY_CLIENT_CIDR: {
        "description": "ServerAddressByClientCIDR tells clients in a CIDR which server "
        "address to use.",
        "type": "object",
        "properties": {
            "clientCIDR": _string("The CIDR the client's address must match.", default=""),
            "serverAddress": _string(
                "Address (host or host:port) of the server for those clients.", default=""
            ),
        },
        "required": ["clientCIDR", "serverAddress"],
    },
    PATCH: {
        "description": "Patch is the body of a PATCH request; its format depends on the "
        "Content-Type.",
        "type": "object",
    },
    SCALE: {
        "description": "Scale represents a scaling request for a resource.",
        "type": "object",
        "properties": {
            **_type_meta(),
            "metadata": ref(OBJECT_META, default={}, description=OBJECT_METADATA_DESCRIPTION),
            "spec": ref(SCALE_SPEC, default={},
                        description="spec is the desired state of the scale."),
            "status": ref(SCALE_STATUS, default={},
                          description="status is the observed state of the scale. Read-only."),
        },
    },
    SCALE_SPEC: {
        "description": "ScaleSpec describes the desired scale.",
        "type": "object",
        "properties": {
            "replicas": _integer("replicas is the desired number of instances.", "int32"),
        },
    },
    SCALE_STATUS: {
        "description": "ScaleStatus is the observed scale.",
        "type": "object",
        "properties": {
            "replicas": _integer("replicas is the observed number of instances.", "int32",
                                 default=0),
            "selector": _string(
                "selector is the label selector (in string form) matching the scaled pods."
            ),
        },
        "required": ["replicas"],
    },
}

#: ``x-kubernetes-group-version-kind`` of standard definitions that are registered
#: once, in the core ``v1`` group version, as every k8s.io/apiserver does.
_FIXED_GVKS: dict[str, list[dict[str, str]]] = {
    STATUS: [{"group": "", "kind": "Status", "version": "v1"}],
    API_RESOURCE_LIST: [{"group": "", "kind": "APIResourceList", "version": "v1"}],
    API_GROUP: [{"group": "", "kind": "APIGroup", "version": "v1"}],
    SCALE: [{"group": "autoscaling", "kind": "Scale", "version": "v1"}],
}

#: Standard kinds that ``AddToGroupVersion`` registers into every served group version
#: (and into the core ``v1``); their GVK list depends on what is served.
CROSS_REGISTERED = {DELETE_OPTIONS: "DeleteOptions", WATCH_EVENT: "WatchEvent"}


def standard_definitions() -> dict[str, dict[str, Any]]:
    """Fresh copies of the standard definitions (names -> internal-form schemas)."""
    defs = copy.deepcopy(_DEFINITIONS)
    for name, gvks in _FIXED_GVKS.items():
        defs[name]["x-kubernetes-group-version-kind"] = copy.deepcopy(gvks)
    return defs
