"""OpenAPI v2 and v3 documents describing the served kinds.

The documents have the shape ``k8s.io/apiserver`` + ``k8s.io/kube-openapi`` publish, so
that ``kubectl explain``, kubectl's field-validation detection and the kube-aggregator
treat this server like a Go one:

* definitions are named ``<reversed group>.<version>.<Name>`` (as for CRDs), e.g.
  ``com.example.wardle.v1beta1.Flunder``; kinds and their lists carry
  ``x-kubernetes-group-version-kind``; the standard meta types come from
  :mod:`extserver.machinery.openapi_meta` under their ``io.k8s.apimachinery`` names;
* paths, operation ids (``listWardleExampleComV1beta1NamespacedFlunder``), tags,
  parameters, consumes/produces, responses and the ``x-kubernetes-action`` /
  ``x-kubernetes-group-version-kind`` operation extensions follow the Go API installer;
* v2 prunes ``default`` values and shares parameters under ``#/parameters``; v3 refers to
  ``#/components/schemas`` and wraps a ``$ref`` that has siblings in ``allOf``;
* ``/openapi/v3`` is an index of per group-version documents whose URLs carry the
  uppercase hex SHA-512 of the served bytes (``?hash=``), as kube-openapi's handler3.

Schemas are derived from the pydantic kind models: field aliases, descriptions,
``Optional``, ``Literal``/``Enum`` (``enum``), nested models (``$ref``), lists, ``dict``
(``additionalProperties``), numeric/string constraints, ``datetime``, and the markers
:data:`IntOrString` and :data:`PreserveUnknownFields`.
"""
from __future__ import annotations

import base64
import collections.abc as cabc
import copy
import datetime as dt
import enum
import hashlib
import inspect
import types
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Protocol, Union, get_args, get_origin

import annotated_types
import orjson
import pydantic_core
from pydantic import BaseModel, TypeAdapter
from pydantic.fields import FieldInfo

from extserver.machinery import openapi_meta as meta

__all__ = [
    "INT_OR_STRING",
    "IntOrString",
    "OpenAPIDocuments",
    "PreserveUnknownFields",
    "ServedKind",
    "build_openapi_documents",
    "build_openapi_v2",
    "build_openapi_v3",
    "build_openapi_v3_discovery",
    "build_openapi_v3_group",
    "definition_name",
    "openapi_v3_path",
    "register_standard_model",
    "serialize",
    "spec_hash",
]


# --------------------------------------------------------------------------- markers


class _IntOrStringMarker:
    """``Annotated`` marker: an integer or a string value (``x-kubernetes-int-or-string``)."""

    def __repr__(self) -> str:
        return "INT_OR_STRING"


INT_OR_STRING = _IntOrStringMarker()
#: A field type accepting an int or a string (like Go's ``intstr.IntOrString``).
IntOrString = Annotated[Union[int, str], INT_OR_STRING]
#: ``json_schema_extra`` (or ``Annotated`` metadata) keeping unknown fields of a value.
PreserveUnknownFields: dict[str, Any] = {"x-kubernetes-preserve-unknown-fields": True}


class ServedKind(Protocol):
    """What the builders need to know about one served kind (duck-typed)."""

    group: str
    version: str
    kind: str
    list_kind: str
    plural: str
    singular: str
    namespaced: bool
    verbs: list[str]
    subresources: list[str]
    short_names: list[str]
    categories: list[str]
    model: type[BaseModel]


_STANDARD_MODELS: dict[type, str] = {}


def register_standard_model(model: type, definition: str) -> None:
    """Describe every field of type ``model`` by the standard definition ``definition``.

    Used for Python mirrors of apimachinery types (e.g. the ``ObjectMeta`` model) when
    they appear below the top level of a kind (the top-level ``metadata`` field is
    always an ``ObjectMeta``).
    """
    if definition not in meta.standard_definitions():
        raise ValueError(f"unknown standard definition {definition!r}")
    _STANDARD_MODELS[model] = definition


def definition_name(group: str, version: str, name: str) -> str:
    """Definition name of ``name`` in ``group``/``version``, e.g.
    ``com.example.wardle.v1beta1.Flunder`` (the group reversed, as for CRDs)."""
    return ".".join([*reversed(group.split(".")), version, name]) if group else f"{version}.{name}"


# --------------------------------------------------------------------------- schemas

_CONSTRAINTS = ("ge", "gt", "le", "lt", "multiple_of", "min_length", "max_length", "pattern")
_SIZE_KEYWORDS = {
    "array": ("minItems", "maxItems"),
    "object": ("minProperties", "maxProperties"),
}
_SIMPLE_FALLBACK_KEYS = ("type", "format", "pattern", "minLength", "maxLength", "enum")


def _extensions(extra: Any) -> dict[str, Any]:
    """The ``x-`` keys of a pydantic ``json_schema_extra`` (other keys are not OpenAPI)."""
    if not isinstance(extra, dict):
        return {}
    return {k: copy.deepcopy(v) for k, v in extra.items() if k.startswith("x-")}


def _enum_schema(values: list[Any], origin: object) -> dict[str, Any]:
    kinds = {type(v) for v in values}
    if kinds <= {str}:
        typ = "string"
    elif kinds <= {bool}:
        typ = "boolean"
    elif kinds <= {int}:
        typ = "integer"
    elif kinds <= {int, float}:
        typ = "number"
    else:
        raise TypeError(f"{origin!r}: enum values must share one JSON type, got {values!r}")
    return {"type": typ, "enum": list(values)}


def _int_or_string() -> dict[str, Any]:
    return {"x-kubernetes-int-or-string": True}


class _SchemaBuilder:
    """Turns the pydantic models of one group version into internal-form definitions."""

    def __init__(self, group: str, version: str, definitions: dict[str, dict[str, Any]]):
        self._group = group
        self._version = version
        self._definitions = definitions
        self._names: dict[type, str] = {}
        self._owners: dict[str, type] = {}

    def add_kind(self, kind: ServedKind) -> None:
        """Define ``kind`` and ``kind.list_kind`` (and every model they use)."""
        name = definition_name(self._group, self._version, kind.kind)
        self._claim(name, kind.model)
        schema = self._object_schema(kind.model, top_level=True)
        schema["x-kubernetes-group-version-kind"] = [self._gvk(kind.kind)]
        self._definitions[name] = schema

        list_name = definition_name(self._group, self._version, kind.list_kind)
        self._definitions[list_name] = {
            "description": f"{kind.list_kind} is a list of {kind.kind} objects.",
            "type": "object",
            "properties": {
                "apiVersion": {"description": meta.API_VERSION_DESCRIPTION, "type": "string"},
                "items": {
                    "description": f"items is the list of {kind.kind} objects.",
                    "type": "array",
                    "items": meta.ref(name),
                },
                "kind": {"description": meta.KIND_DESCRIPTION, "type": "string"},
                "metadata": meta.ref(
                    meta.LIST_META, default={}, description=meta.LIST_METADATA_DESCRIPTION
                ),
            },
            "required": ["items"],
            "x-kubernetes-group-version-kind": [self._gvk(kind.list_kind)],
        }

    def _gvk(self, kind: str) -> dict[str, str]:
        return {"group": self._group, "kind": kind, "version": self._version}

    def _claim(self, name: str, model: type) -> None:
        owner = self._owners.get(name)
        if owner is not None and owner is not model:
            raise ValueError(
                f"OpenAPI definition {name} would describe both {owner.__module__}."
                f"{owner.__qualname__} and {model.__module__}.{model.__qualname__}; give one "
                f"of them a distinct model_config['title']"
            )
        self._owners[name] = model
        self._names[model] = name

    def _model_ref(self, model: type[BaseModel]) -> dict[str, Any]:
        if model in _STANDARD_MODELS:
            return meta.ref(_STANDARD_MODELS[model])
        name = self._names.get(model)
        if name is None:
            title = model.model_config.get("title") or model.__name__
            name = definition_name(self._group, self._version, title)
            self._claim(name, model)
            self._definitions[name] = self._object_schema(model, top_level=False)
        return meta.ref(name)

    def _object_schema(self, model: type[BaseModel], *, top_level: bool) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        if top_level:  # every kind has these, whatever its model declares for them
            properties = {
                "apiVersion": {"description": meta.API_VERSION_DESCRIPTION, "type": "string"},
                "kind": {"description": meta.KIND_DESCRIPTION, "type": "string"},
                "metadata": meta.ref(meta.OBJECT_META, default={},
                                     description=meta.OBJECT_METADATA_DESCRIPTION),
            }
        required: list[str] = []
        for attr, info in model.model_fields.items():
            if info.exclude:
                continue
            key = info.serialization_alias or info.alias or attr
            if top_level and key in properties:
                if key == "metadata" and info.description:
                    properties[key]["description"] = info.description
                continue
            properties[key] = self._field_schema(info)
            if info.is_required():
                required.append(key)
        schema: dict[str, Any] = {"type": "object"}
        if model.__doc__:
            schema["description"] = inspect.cleandoc(model.__doc__)
        if properties:
            schema["properties"] = properties
        if required:
            schema["required"] = required
        schema.update(_extensions(model.model_config.get("json_schema_extra")))
        return schema

    def _field_schema(self, info: FieldInfo) -> dict[str, Any]:
        schema = self._apply_metadata(self._type_schema(info.annotation), info.metadata)
        if info.description:
            schema["description"] = info.description
        default = info.get_default(call_default_factory=False)
        if info.default_factory is None and default is not None and not info.is_required():
            if type(default) in _STANDARD_MODELS:  # its Python fields are not the schema's
                schema["default"] = {}
            else:
                schema["default"] = pydantic_core.to_jsonable_python(
                    default, by_alias=True, exclude_none=True
                )
        schema.update(_extensions(info.json_schema_extra))
        return schema

    def _apply_metadata(self, schema: dict[str, Any], metadata: list[Any]) -> dict[str, Any]:
        for item in metadata:
            if isinstance(item, FieldInfo):
                schema = self._apply_metadata(schema, item.metadata)
                if item.description:
                    schema["description"] = item.description
                schema.update(_extensions(item.json_schema_extra))
            elif isinstance(item, annotated_types.GroupedMetadata):
                schema = self._apply_metadata(schema, list(item))
            elif isinstance(item, dict):
                schema.update(_extensions(item))
            else:
                for constraint in _CONSTRAINTS:
                    value = getattr(item, constraint, None)
                    if value is not None:
                        self._add_constraint(schema, constraint, value)
        return schema

    @staticmethod
    def _add_constraint(schema: dict[str, Any], constraint: str, value: Any) -> None:
        if constraint in ("min_length", "max_length"):
            low, high = _SIZE_KEYWORDS.get(schema.get("type", ""), ("minLength", "maxLength"))
            schema[low if constraint == "min_length" else high] = value
        elif constraint == "pattern":
            schema["pattern"] = value if isinstance(value, str) else value.pattern
        elif constraint == "multiple_of":
            schema["multipleOf"] = value
        elif constraint in ("ge", "gt"):
            schema["minimum"] = value
            if constraint == "gt":
                schema["exclusiveMinimum"] = True
        else:
            schema["maximum"] = value
            if constraint == "lt":
                schema["exclusiveMaximum"] = True

    def _type_schema(self, tp: Any) -> dict[str, Any]:
        origin = get_origin(tp)
        if tp is Any or tp is object:
            return dict(PreserveUnknownFields)
        if origin is Annotated:
            base, *metadata = get_args(tp)
            if any(item is INT_OR_STRING for item in metadata):
                return self._apply_metadata(_int_or_string(), metadata)
            return self._apply_metadata(self._type_schema(base), metadata)
        if origin in (Union, types.UnionType):
            members = [arg for arg in get_args(tp) if arg is not type(None)]
            if len(members) == 1:
                return self._type_schema(members[0])
            if set(members) == {int, str}:
                return _int_or_string()
            raise TypeError(
                f"{tp!r}: unions other than Optional[X] and int | str have no OpenAPI form")
        if origin is Literal:
            values = [v.value if isinstance(v, enum.Enum) else v for v in get_args(tp)]
            return _enum_schema(values, tp)
        if origin in (list, tuple, set, frozenset, cabc.Sequence, cabc.MutableSequence,
                      cabc.Set, cabc.MutableSet, cabc.Iterable, cabc.Collection):
            args = [arg for arg in get_args(tp) if arg is not Ellipsis]
            if origin is tuple and len(args) > 1:
                raise TypeError(f"{tp!r}: only homogeneous tuple[X, ...] has an OpenAPI form")
            schema: dict[str, Any] = {
                "type": "array",
                "items": self._type_schema(args[0] if args else Any),
            }
            if origin in (set, frozenset, cabc.Set, cabc.MutableSet):
                schema["x-kubernetes-list-type"] = "set"
            return schema
        if origin in (dict, cabc.Mapping, cabc.MutableMapping):
            key, value = get_args(tp) or (str, Any)
            if key is not str:
                raise TypeError(f"{tp!r}: map keys must be str")
            if value is Any or value is object:
                return {"type": "object", **PreserveUnknownFields}
            return {"type": "object", "additionalProperties": self._type_schema(value)}
        if isinstance(tp, type):
            if issubclass(tp, BaseModel):
                return self._model_ref(tp)
            if issubclass(tp, enum.Enum):
                return _enum_schema([member.value for member in tp], tp)
            simple = self._simple_type(tp)
            if simple is not None:
                return simple
        return self._fallback(tp)

    @staticmethod
    def _simple_type(tp: type) -> dict[str, Any] | None:
        if tp is bool:
            return {"type": "boolean"}
        if tp is int:
            return {"type": "integer", "format": "int64"}
        if tp is float:
            return {"type": "number", "format": "double"}
        if tp is str:
            return {"type": "string"}
        if tp is bytes:
            return {"type": "string", "format": "byte"}
        if tp is dt.datetime:
            return {"type": "string", "format": "date-time"}
        if tp is dt.date:
            return {"type": "string", "format": "date"}
        if tp is uuid.UUID:
            return {"type": "string", "format": "uuid"}
        if tp is list:
            return {"type": "array", "items": dict(PreserveUnknownFields)}
        if tp is dict:
            return {"type": "object", **PreserveUnknownFields}
        return None

    @staticmethod
    def _fallback(tp: Any) -> dict[str, Any]:
        """Other leaf types (``AnyUrl``, ...): pydantic's JSON schema when it is a plain one."""
        try:
            generated = TypeAdapter(tp).json_schema()
        except Exception as exc:  # pydantic raises several error types for unsupported types
            raise TypeError(f"{tp!r} has no OpenAPI form") from exc
        if generated.get("type") not in ("string", "integer", "number", "boolean"):
            raise TypeError(f"{tp!r} has no OpenAPI form")
        return {k: generated[k] for k in _SIMPLE_FALLBACK_KEYS if k in generated}


# --------------------------------------------------------------------------- routes

MEDIA_TYPES = ("application/json", "application/yaml")
STREAM_MEDIA_TYPES = ("application/json;stream=watch",)
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)
_ANY = ("*/*",)
_OPERATION_VERBS = ("get", "log", "read", "replace", "patch", "delete", "deletecollection",
                    "watch", "connect", "proxy", "list", "create")


@dataclass(frozen=True, slots=True)
class _Param:
    name: str
    location: str  # "query" or "path"
    type: str
    description: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class _Body:
    definition: str
    required: bool


@dataclass(slots=True)
class _Route:
    method: str
    path: str
    operation: str  # Go-style route operation, e.g. "readNamespacedFlunderStatus"
    description: str
    consumes: tuple[str, ...]
    produces: tuple[str, ...]
    responses: dict[int, tuple[str, str]]  # code -> (message, definition)
    params: list[_Param] = field(default_factory=list)
    body: _Body | None = None
    action: str | None = None
    gvk: dict[str, str] | None = None


_PRETTY = _Param("pretty", "query", "string",
                 "If 'true', the output is pretty printed.")
_NAMESPACE = _Param("namespace", "path", "string",
                    "object name and auth scope, such as for teams and projects", True)
_DRY_RUN = _Param("dryRun", "query", "string",
                  "When present, modifications are not persisted. The only valid value is "
                  "'All': every dry-run stage is processed.")
_FIELD_MANAGER = _Param("fieldManager", "query", "string",
                        "fieldManager names the actor making these changes; at most 128 "
                        "printable characters.")
_FIELD_MANAGER_PATCH = _Param("fieldManager", "query", "string",
                              "fieldManager names the actor making these changes; at most 128 "
                              "printable characters. Required for apply patches "
                              "(application/apply-patch+yaml), optional otherwise.")
_FIELD_VALIDATION = _Param("fieldValidation", "query", "string",
                           "How to treat unknown or duplicate fields in the request body: "
                           "'Ignore' drops them silently, 'Warn' drops them with a warning "
                           "header (the default), 'Strict' fails the request.")
_FORCE = _Param("force", "query", "boolean",
                "Force an apply request to take ownership of fields managed by others. Must "
                "be unset for non-apply patches.")
_LIST_PARAMS = (
    _Param("allowWatchBookmarks", "query", "boolean",
           "Ask for BOOKMARK watch events; ignored when not watching."),
    _Param("continue", "query", "string",
           "The continue token of a previous chunked list call, to fetch the next chunk. An "
           "expired token is answered with 410 Expired."),
    _Param("fieldSelector", "query", "string",
           "Restrict the returned objects by their fields. Defaults to everything."),
    _Param("labelSelector", "query", "string",
           "Restrict the returned objects by their labels. Defaults to everything."),
    _Param("limit", "query", "integer",
           "Maximum number of items to return; if more exist, the list metadata carries a "
           "continue token. Not supported with watch."),
    _Param("resourceVersion", "query", "string",
           "Constrains which resource versions the request may be served from (unset: most "
           "recent, '0': any)."),
    _Param("resourceVersionMatch", "query", "string",
           "How resourceVersion applies to a list call: 'NotOlderThan' or 'Exact'."),
    _Param("sendInitialEvents", "query", "boolean",
           "With watch=true, start the stream with synthetic ADDED events for the current "
           "state, followed by a BOOKMARK annotated \"k8s.io/initial-events-end\"."),
    _Param("timeoutSeconds", "query", "integer",
           "Timeout for the list/watch call, regardless of activity."),
    _Param("watch", "query", "boolean",
           "Watch for changes and return them as a stream of add, update and remove "
           "notifications. Specify resourceVersion."),
)
_DELETE_PARAMS = (
    _DRY_RUN,
    _Param("gracePeriodSeconds", "query", "integer",
           "Seconds before the object is deleted; non-negative, zero means immediately. "
           "Unset uses the type's default."),
    _Param("propagationPolicy", "query", "string",
           "Whether and how garbage collection is performed: 'Orphan', 'Background' or "
           "'Foreground'."),
)
_WRITE_PARAMS = (_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION)
_PATCH_PARAMS = (_DRY_RUN, _FIELD_MANAGER_PATCH, _FIELD_VALIDATION, _FORCE)
_UNAUTHORIZED = 401


def _article(noun: str) -> str:
    """Go's GetArticleForNoun with " " padding."""
    if noun.endswith("s") and not noun.endswith("ss"):
        return " "
    return " an " if noun[:1].lower() in "aeiou" else " a "


def _kind_routes(kind: ServedKind) -> list[_Route]:
    """The routes the Go API installer registers for ``kind`` (and its subresources)."""
    verbs = set(kind.verbs)
    name = kind.kind
    gvk = {"group": kind.group, "kind": name, "version": kind.version}
    obj = definition_name(kind.group, kind.version, name)
    lst = definition_name(kind.group, kind.version, kind.list_kind)
    base = f"/apis/{kind.group}/{kind.version}"
    scope = "Namespaced" if kind.namespaced else ""
    scope_params = [_NAMESPACE] if kind.namespaced else []
    prefix = f"namespaces/{{namespace}}/{kind.plural}" if kind.namespaced else kind.plural
    collection, watch_collection = f"{base}/{prefix}", f"{base}/watch/{prefix}"
    name_param = _Param("name", "path", "string", f"name of the {name}", True)
    item_params = [*scope_params, name_param]
    listable, watchable = "list" in verbs, "watch" in verbs
    list_doc = ("list or watch objects of kind " if watchable else "list objects of kind ") + name

    def route(method: str, path: str, op: str, doc: str, action: str,
              params: list[_Param], responses: dict[int, tuple[str, str]], *,
              produces: tuple[str, ...] = MEDIA_TYPES, consumes: tuple[str, ...] = _ANY,
              body: _Body | None = None, route_gvk: dict[str, str] = gvk) -> _Route:
        return _Route(method, path, op, doc, consumes, produces, responses,
                      [_PRETTY, *params], body, action, route_gvk)

    def ok(definition: str) -> dict[int, tuple[str, str]]:
        return {200: ("OK", definition)}

    watch_ok = ok(meta.WATCH_EVENT)
    routes: list[_Route] = []

    def collection_routes(path: str, watch_path: str, params: list[_Param], suffix: str,
                          op_scope: str) -> None:
        if listable:
            routes.append(route("GET", path, f"list{op_scope}{name}{suffix}", list_doc, "list",
                                [*params, *_LIST_PARAMS], ok(lst),
                                produces=MEDIA_TYPES + STREAM_MEDIA_TYPES))
        if listable and watchable:
            routes.append(route(
                "GET", watch_path, f"watch{op_scope}{name}List{suffix}",
                f"watch individual changes to a list of {name}. deprecated: use the 'watch' "
                "parameter with a list operation instead.", "watchlist",
                [*params, *_LIST_PARAMS], watch_ok, produces=MEDIA_TYPES + STREAM_MEDIA_TYPES))

    collection_routes(collection, watch_collection, scope_params, "", scope)
    if "create" in verbs:
        routes.append(route("POST", collection, f"create{scope}{name}",
                            f"create{_article(name)}{name}", "post",
                            [*scope_params, *_WRITE_PARAMS],
                            {200: ("OK", obj), 201: ("Created", obj), 202: ("Accepted", obj)},
                            body=_Body(obj, True)))
    if "deletecollection" in verbs:
        selection = [p for p in _LIST_PARAMS if p.name not in ("watch", "allowWatchBookmarks")]
        routes.append(route("DELETE", collection, f"deletecollection{scope}{name}",
                            f"delete collection of {name}", "deletecollection",
                            [*scope_params, *_DELETE_PARAMS, *selection], ok(meta.STATUS),
                            body=_Body(meta.DELETE_OPTIONS, False)))
    item = f"{collection}/{{name}}"
    if "get" in verbs:
        routes.append(route("GET", item, f"read{scope}{name}", f"read the specified {name}",
                            "get", item_params, ok(obj)))
    if "update" in verbs:
        routes.append(route("PUT", item, f"replace{scope}{name}",
                            f"replace the specified {name}", "put",
                            [*item_params, *_WRITE_PARAMS],
                            {200: ("OK", obj), 201: ("Created", obj)}, body=_Body(obj, True)))
    if "patch" in verbs:
        routes.append(route("PATCH", item, f"patch{scope}{name}",
                            f"partially update the specified {name}", "patch",
                            [*item_params, *_PATCH_PARAMS],
                            {200: ("OK", obj), 201: ("Created", obj)}, consumes=PATCH_TYPES,
                            body=_Body(meta.PATCH, True)))
    if "delete" in verbs:
        routes.append(route("DELETE", item, f"delete{scope}{name}",
                            f"delete{_article(name)}{name}", "delete",
                            [*item_params, *_DELETE_PARAMS],
                            {200: ("OK", meta.STATUS), 202: ("Accepted", meta.STATUS)},
                            body=_Body(meta.DELETE_OPTIONS, False)))
    if watchable:
        routes.append(route(
            "GET", f"{watch_collection}/{{name}}", f"watch{scope}{name}",
            f"watch changes to an object of kind {name}. deprecated: use the 'watch' parameter "
            "with a list operation instead, filtered to a single item with the 'fieldSelector' "
            "parameter.", "watch", [*item_params, *_LIST_PARAMS], watch_ok,
            produces=MEDIA_TYPES + STREAM_MEDIA_TYPES))
    if kind.namespaced:
        collection_routes(f"{base}/{kind.plural}", f"{base}/watch/{kind.plural}", [],
                          "ForAllNamespaces", "")

    for sub in kind.subresources:
        if sub == "status":
            sub_def, sub_gvk = obj, gvk
        elif sub == "scale":
            sub_def, sub_gvk = meta.SCALE, {"group": "autoscaling", "kind": "Scale",
                                            "version": "v1"}
        else:
            continue  # only status and scale have a standard OpenAPI shape
        path, title = f"{item}/{sub}", sub.capitalize()
        if "get" in verbs:
            routes.append(route("GET", path, f"read{scope}{name}{title}",
                                f"read {sub} of the specified {name}", "get", item_params,
                                ok(sub_def), route_gvk=sub_gvk))
        if "update" in verbs:
            routes.append(route("PUT", path, f"replace{scope}{name}{title}",
                                f"replace {sub} of the specified {name}", "put",
                                [*item_params, *_WRITE_PARAMS],
                                {200: ("OK", sub_def), 201: ("Created", sub_def)},
                                body=_Body(sub_def, True), route_gvk=sub_gvk))
        if "patch" in verbs:
            routes.append(route("PATCH", path, f"patch{scope}{name}{title}",
                                f"partially update {sub} of the specified {name}", "patch",
                                [*item_params, *_PATCH_PARAMS],
                                {200: ("OK", sub_def), 201: ("Created", sub_def)},
                                consumes=PATCH_TYPES, body=_Body(meta.PATCH, True),
                                route_gvk=sub_gvk))
    return routes


def _resources_route(group: str, version: str) -> _Route:
    return _Route("GET", f"/apis/{group}/{version}/", "getAPIResources",
                  "get available resources", MEDIA_TYPES, MEDIA_TYPES,
                  {200: ("OK", meta.API_RESOURCE_LIST)})


def _group_route(group: str) -> _Route:
    return _Route("GET", f"/apis/{group}/", "getAPIGroup", "get information of a group",
                  MEDIA_TYPES, MEDIA_TYPES, {200: ("OK", meta.API_GROUP)})


def _valid_operation_id(text: str, capitalize_first: bool) -> str:
    """Go's ToValidOperationID: drop punctuation, capitalise the letter after it."""
    out: list[str] = []
    capitalize = capitalize_first
    for i, char in enumerate(text):
        if char.isalpha() or char == "_" or (i != 0 and char.isdigit()):
            out.append(char.upper() if capitalize else char)
            capitalize = False
        else:
            capitalize = True
    return "".join(out)


def _operation_id_and_tag(operation: str, path: str) -> tuple[str, str]:
    """Go's GetOperationIDAndTags for an ``/apis/<group>[/<version>]`` route."""
    verb = next(v for v in sorted(_OPERATION_VERBS, key=len) if operation.startswith(v))
    rest = operation[len(verb):]
    parts = path.strip("/").split("/")
    group = parts[1].removesuffix(".k8s.io")
    prefix = verb + _valid_operation_id(group, True)
    tag = _valid_operation_id(group, False)
    if len(parts) > 2:
        prefix += _valid_operation_id(parts[2], True)
        tag += "_" + _valid_operation_id(parts[2], False)
    return prefix + _valid_operation_id(rest, True), tag


# --------------------------------------------------------------------------- rendering


def _walk(schema: Any, visit: Any) -> Any:
    """Rebuild ``schema`` bottom-up, calling ``visit(node)`` on every sub-schema."""
    if not isinstance(schema, dict):
        return schema
    node = dict(schema)
    if isinstance(node.get("properties"), dict):
        node["properties"] = {k: _walk(v, visit) for k, v in node["properties"].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            node[key] = _walk(node[key], visit)
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(node.get(key), list):
            node[key] = [_walk(v, visit) for v in node[key]]
    return visit(node)


def _refs(value: Any) -> list[str]:
    """Definition names referenced anywhere in ``value`` (internal or v3 form)."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            target = item.get("$ref")
            if isinstance(target, str):
                found.append(target.rsplit("/", 1)[-1])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _reachable(roots: list[str], definitions: dict[str, dict[str, Any]]) -> list[str]:
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        if name not in definitions:
            raise KeyError(f"OpenAPI definition {name} is referenced but not defined")
        seen.add(name)
        stack.extend(_refs(definitions[name]))
    return sorted(seen)


def _prune_default(node: dict[str, Any]) -> dict[str, Any]:
    node.pop("default", None)
    return node


def _to_v3_schema(node: dict[str, Any]) -> dict[str, Any]:
    target = node.get("$ref")
    if target is None:
        return node
    node["$ref"] = target.replace(meta.REF_PREFIX, "#/components/schemas/", 1)
    if len(node) == 1:
        return node
    wrapped = {k: v for k, v in node.items() if k != "$ref"}
    wrapped["allOf"] = [{"$ref": node["$ref"]}]
    return wrapped


def _common_parameters(routes: list[_Route]) -> dict[tuple[str, str], _Param]:
    """Parameters every route of one path has (Go moves them to the path item)."""
    counts: dict[tuple[str, str], int] = {}
    last: dict[tuple[str, str], _Param] = {}
    for r in routes:
        for p in r.params:
            key = (p.name, p.location)
            counts[key] = counts.get(key, 0) + 1
            last[key] = p
    return {key: last[key] for key, count in counts.items() if count == len(routes)}


def _by_path(routes: list[_Route]) -> dict[str, list[_Route]]:
    grouped: dict[str, list[_Route]] = {}
    for r in routes:
        grouped.setdefault(r.path, []).append(r)
    return grouped


def _v2_param(p: _Param) -> dict[str, Any]:
    out: dict[str, Any] = {"uniqueItems": True, "type": p.type, "description": p.description,
                           "name": p.name, "in": p.location}
    if p.required:
        out["required"] = True
    return out


def _v3_param(p: _Param) -> dict[str, Any]:
    out: dict[str, Any] = {"description": p.description, "in": p.location, "name": p.name,
                           "schema": {"type": p.type, "uniqueItems": True}}
    if p.required:
        out["required"] = True
    return out


def _sorted_params(params: list[_Param]) -> list[_Param]:
    return sorted(params, key=lambda p: (p.name, p.location))


def _operation_common(r: _Route) -> dict[str, Any]:
    op_id, tag = _operation_id_and_tag(r.operation, r.path)
    op: dict[str, Any] = {"description": r.description, "operationId": op_id, "tags": [tag]}
    if r.action is not None:
        op["x-kubernetes-action"] = r.action
        op["x-kubernetes-group-version-kind"] = dict(r.gvk or {})
    return op


def _render_paths_v2(routes: list[_Route]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for path, path_routes in _by_path(routes).items():
        common = _common_parameters(path_routes)
        item: dict[str, Any] = {}
        if common:
            item["parameters"] = [_v2_param(p) for p in _sorted_params(list(common.values()))]
        for r in path_routes:
            op = _operation_common(r)
            op.update({"consumes": list(r.consumes), "produces": list(r.produces),
                       "schemes": ["https"]})
            params: list[tuple[str, str, dict[str, Any]]] = [
                (p.name, p.location, _v2_param(p))
                for p in r.params if (p.name, p.location) not in common
            ]
            if r.body is not None:
                body: dict[str, Any] = {"name": "body", "in": "body",
                                        "schema": meta.ref(r.body.definition)}
                if r.body.required:
                    body["required"] = True
                params.append(("body", "body", body))
            if params:
                op["parameters"] = [p for _, _, p in sorted(params, key=lambda t: t[:2])]
            responses: dict[str, Any] = {
                str(code): {"description": message, "schema": meta.ref(definition)}
                for code, (message, definition) in sorted(r.responses.items())
            }
            responses[str(_UNAUTHORIZED)] = {"description": "Unauthorized"}
            op["responses"] = responses
            item[r.method.lower()] = op
        paths[path] = item
    return paths


def _render_paths_v3(routes: list[_Route]) -> dict[str, Any]:
    def content(types_: tuple[str, ...], definition: str) -> dict[str, Any]:
        return {t: {"schema": {"$ref": "#/components/schemas/" + definition}} for t in types_}

    paths: dict[str, Any] = {}
    for path, path_routes in _by_path(routes).items():
        common = _common_parameters(path_routes)
        item: dict[str, Any] = {}
        if common:
            item["parameters"] = [_v3_param(p) for p in _sorted_params(list(common.values()))]
        for r in path_routes:
            op = _operation_common(r)
            params = _sorted_params([p for p in r.params if (p.name, p.location) not in common])
            if params:
                op["parameters"] = [_v3_param(p) for p in params]
            if r.body is not None:
                body: dict[str, Any] = {"content": content(r.consumes, r.body.definition)}
                if r.body.required:
                    body["required"] = True
                op["requestBody"] = body
            responses: dict[str, Any] = {
                str(code): {"description": message, "content": content(r.produces, definition)}
                for code, (message, definition) in sorted(r.responses.items())
            }
            responses[str(_UNAUTHORIZED)] = {"description": "Unauthorized"}
            op["responses"] = responses
            item[r.method.lower()] = op
        paths[path] = item
    return paths


def _fnv64_b64(text: str) -> str:
    """Go's base64Hash: first 6 bytes of FNV-1 64 (big endian), URL-safe base64."""
    value = 0xCBF29CE484222325
    for byte in text.encode():
        value = (value * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
        value ^= byte
    return base64.urlsafe_b64encode(value.to_bytes(8, "big")[:6]).decode()


def _shareable(param: dict[str, Any]) -> bool:
    """kube-openapi keeps name, dryRun, fieldValidation and kind-specific bodies inline."""
    if param["name"] == "name" and param["in"] in ("query", "path"):
        return False
    if param["in"] == "query" and param["name"] in ("fieldValidation", "dryRun"):
        return False
    if param["in"] == "body":
        return param["schema"]["$ref"].startswith(meta.REF_PREFIX + "io.k8s.apimachinery")
    return True


def _share_parameters(paths: dict[str, Any]) -> dict[str, Any]:
    """Move repeated v2 parameters to ``#/parameters`` as kube-openapi's builder does."""
    lists: list[list[dict[str, Any]]] = []
    for item in paths.values():
        lists.extend(v["parameters"] for k, v in item.items()
                     if k != "parameters" and "parameters" in v)
        if "parameters" in item:
            lists.append(item["parameters"])
    keys = sorted({serialize(p).decode() for params in lists for p in params if _shareable(p)})
    shared: dict[str, Any] = {}
    names: dict[str, str] = {}
    for key in keys:
        param = orjson.loads(key)
        name, attempt = f"{param['name']}-{_fnv64_b64(key)}", 1
        while name in shared:
            attempt += 1
            name = f"{param['name']}-{attempt}"
        shared[name], names[key] = param, name
    for params in lists:
        for i, p in enumerate(params):
            name = names.get(serialize(p).decode())
            if name is not None:
                params[i] = {"$ref": f"#/parameters/{name}"}
    return shared


def _cross_registered_gvks(kind: str, group_versions: list[tuple[str, str]]
                           ) -> list[dict[str, str]]:
    gvks = {("", "v1"), *group_versions}
    return [{"group": g, "kind": kind, "version": v} for g, v in sorted(gvks)]


def _definitions(kinds: list[ServedKind], gvk_group_versions: list[tuple[str, str]]
                 ) -> dict[str, dict[str, Any]]:
    definitions = meta.standard_definitions()
    for name, kind_name in meta.CROSS_REGISTERED.items():
        definitions[name]["x-kubernetes-group-version-kind"] = _cross_registered_gvks(
            kind_name, gvk_group_versions)
    builders: dict[tuple[str, str], _SchemaBuilder] = {}
    for kind in kinds:
        gv = (kind.group, kind.version)
        if gv not in builders:
            builders[gv] = _SchemaBuilder(kind.group, kind.version, definitions)
        builders[gv].add_kind(kind)
    return definitions


def validation_schema(kind: ServedKind) -> tuple[dict[str, dict[str, Any]], str]:
    """The definitions that describe ``kind`` as served, and its own definition's name:
    what a request body of that kind is validated against."""
    definitions = meta.standard_definitions()
    _SchemaBuilder(kind.group, kind.version, definitions).add_kind(kind)
    return definitions, definition_name(kind.group, kind.version, kind.kind)


def _sorted_kinds(kinds: cabc.Iterable[ServedKind]) -> list[ServedKind]:
    return sorted(kinds, key=lambda k: (k.group, k.version, k.kind))


def _info(title: str, version: str) -> dict[str, str]:
    return {"title": title, "version": version}


_BEARER = {"BearerToken": {"description": "Bearer Token authentication", "type": "apiKey",
                           "name": "authorization", "in": "header"}}


def build_openapi_v2(kinds: cabc.Iterable[ServedKind], *, title: str = "extserver",
                     version: str = "unversioned") -> dict[str, Any]:
    """Swagger 2.0 document for every served kind, as served at ``/openapi/v2``.

    ``kinds`` is an iterable of :class:`ServedKind`. Includes the discovery paths
    ``/apis/<group>/`` and ``/apis/<group>/<version>/``.
    """
    ordered = _sorted_kinds(kinds)
    group_versions = sorted({(k.group, k.version) for k in ordered})
    routes: list[_Route] = [_group_route(g) for g in sorted({g for g, _ in group_versions})]
    for group, version_ in group_versions:
        routes.append(_resources_route(group, version_))
    for kind in ordered:
        routes.extend(_kind_routes(kind))
    definitions = _definitions(ordered, group_versions)
    paths = _render_paths_v2(routes)
    names = _reachable(_refs(paths), definitions)
    doc: dict[str, Any] = {
        "swagger": "2.0",
        "info": _info(title, version),
        "paths": paths,
        "definitions": {n: _walk(definitions[n], _prune_default) for n in names},
        "securityDefinitions": copy.deepcopy(_BEARER),
        "security": [{"BearerToken": []}],
    }
    shared = _share_parameters(paths)
    if shared:
        doc["parameters"] = shared
    return doc


def _v3_document(routes: list[_Route], definitions: dict[str, dict[str, Any]], title: str,
                 version: str) -> dict[str, Any]:
    paths = _render_paths_v3(routes)
    names = _reachable(_refs(paths), definitions)
    return {
        "openapi": "3.0.0",
        "info": _info(title, version),
        "paths": paths,
        "components": {
            "schemas": {n: _walk(definitions[n], _to_v3_schema) for n in names},
            "securitySchemes": copy.deepcopy(_BEARER),
        },
    }


def build_openapi_v3(kinds: cabc.Iterable[ServedKind], *, title: str = "extserver",
                     version: str = "unversioned") -> dict[str, Any]:
    """OpenAPI 3.0 document of one group version, as served at ``/openapi/v3/apis/<g>/<v>``.

    ``kinds`` are the :class:`ServedKind` s of that group version (at least one).
    """
    ordered = _sorted_kinds(kinds)
    group_versions = sorted({(k.group, k.version) for k in ordered})
    if len(group_versions) != 1:
        raise ValueError(f"expected the kinds of one group version, got {group_versions}")
    group, version_ = group_versions[0]
    routes = [_resources_route(group, version_)]
    for kind in ordered:
        routes.extend(_kind_routes(kind))
    return _v3_document(routes, _definitions(ordered, group_versions), title, version)


def build_openapi_v3_group(group: str, *, title: str = "extserver",
                           version: str = "unversioned") -> dict[str, Any]:
    """OpenAPI 3.0 document of the group discovery path, served at ``/openapi/v3/apis/<g>``."""
    return _v3_document([_group_route(group)], meta.standard_definitions(), title, version)


def openapi_v3_path(group: str, version: str = "") -> str:
    """Key of a document in the ``/openapi/v3`` index: ``apis/<g>/<v>`` (or ``apis/<g>``)."""
    return f"apis/{group}/{version}" if version else f"apis/{group}"


def spec_hash(body: bytes) -> str:
    """kube-openapi's ETag/hash of a served document: uppercase hex SHA-512."""
    return hashlib.sha512(body).hexdigest().upper()


def serialize(doc: Any) -> bytes:
    """The bytes served for ``doc`` (compact JSON, keys sorted, hence stable hashes)."""
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def build_openapi_v3_discovery(hashes: dict[str, str]) -> dict[str, Any]:
    """The ``/openapi/v3`` index, from ``{openapi_v3_path(...): spec_hash(served bytes)}``."""
    return {"paths": {
        key: {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
        for key, digest in sorted(hashes.items())
    }}


@dataclass(frozen=True, slots=True)
class OpenAPIDocuments:
    """Every OpenAPI document of the server, serialised once.

    Serving rules (kube-openapi handler/handler3): JSON only (``406`` for an ``Accept``
    that rules out ``application/json``); ``ETag`` is the quoted hash; for
    ``/openapi/v3/<key>?hash=H``: a stale ``H`` is answered ``301`` to the current
    ``serverRelativeURL``, a current one with ``Cache-Control: public, immutable`` and an
    ``Expires`` one year ahead. :meth:`v3_response` implements the v3 part.
    """

    v2: bytes
    v2_hash: str
    v3: dict[str, bytes]  # openapi_v3_path(...) -> document bytes
    v3_hashes: dict[str, str]
    v3_discovery: bytes
    v3_discovery_hash: str

    def v3_response(self, key: str, query_hash: str | None) -> tuple[int, bytes, dict[str, str]]:
        """``(status, body, headers)`` for ``GET /openapi/v3/<key>[?hash=...]``."""
        body = self.v3.get(key)
        if body is None:
            return 404, b"", {}
        digest = self.v3_hashes[key]
        headers = {"Content-Type": "application/json", "ETag": f'"{digest}"', "Vary": "Accept"}
        if query_hash:
            if query_hash != digest:
                return 301, b"", {"Location": f"/openapi/v3/{key}?hash={digest}"}
            expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=365)
            headers["Cache-Control"] = "public, immutable"
            headers["Expires"] = expires.strftime("%a, %d %b %Y %H:%M:%S GMT")
        return 200, body, headers


def build_openapi_documents(kinds: cabc.Iterable[ServedKind], *, title: str = "extserver",
                            version: str = "unversioned") -> OpenAPIDocuments:
    """Build and serialise ``/openapi/v2``, ``/openapi/v3`` and every v3 document."""
    ordered = _sorted_kinds(kinds)
    v2 = serialize(build_openapi_v2(ordered, title=title, version=version))
    v3: dict[str, bytes] = {}
    by_gv: dict[tuple[str, str], list[ServedKind]] = {}
    for kind in ordered:
        by_gv.setdefault((kind.group, kind.version), []).append(kind)
    for (group, version_), gv_kinds in by_gv.items():
        v3[openapi_v3_path(group, version_)] = serialize(
            build_openapi_v3(gv_kinds, title=title, version=version))
        v3.setdefault(openapi_v3_path(group), serialize(
            build_openapi_v3_group(group, title=title, version=version)))
    hashes = {key: spec_hash(body) for key, body in v3.items()}
    discovery = serialize(build_openapi_v3_discovery(hashes))
    return OpenAPIDocuments(v2, spec_hash(v2), v3, hashes, discovery, spec_hash(discovery))
