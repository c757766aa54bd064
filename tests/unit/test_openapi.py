"""OpenAPI v2/v3 documents built from pydantic kind models (extserver.openapi)."""
from __future__ import annotations

import asyncio
import datetime as dt
import enum
import hashlib
import json
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import orjson
import pytest
from aiohttp import web
from openapi_spec_validator import OpenAPIV2SpecValidator, OpenAPIV30SpecValidator
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from extserver import openapi as oa
from extserver.machinery import openapi_meta as meta

GROUP, VERSION = "wardle.example.com", "v1beta1"
PREFIX = "com.example.wardle.v1beta1."
BASE = f"/apis/{GROUP}/{VERSION}"
ALL_VERBS = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]


# --------------------------------------------------------------------------- sample kinds


class ObjectMeta(BaseModel):
    """Stand-in for the server's ObjectMeta model (never described from its fields)."""

    name: str = ""
    internal_only: int = 0


class Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Color(str, enum.Enum):
    RED = "red"
    BLUE = "blue"


class FlunderSpec(Camel):
    """FlunderSpec is the specification of a Flunder."""

    flunder_reference: Optional[str] = Field(
        None, description="A name of another flunder, exclusive with fischerReference.")
    reference_type: Literal["Flunder", "Fischer"] = Field(
        "Flunder", description="The kind of the reference.")
    replicas: Annotated[int, Field(ge=0, le=10)] = 1
    port: oa.IntOrString = 80
    color: Optional[Color] = None
    weight: float = 1.5
    labels: dict[str, str] = {}
    raw: Annotated[dict[str, Any], oa.PreserveUnknownFields] = {}
    tags: list[Annotated[str, Field(min_length=1)]] = []
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map",
                           "x-kubernetes-list-map-keys": ["type"], "examples": [[]]},
    )


class Condition(Camel):
    """Condition is one observation."""

    type: str
    last_transition_time: Optional[dt.datetime] = None


class FlunderStatus(Camel):
    """FlunderStatus is the observed state of a Flunder."""

    phase: str = Field("Pending", description="The current phase.")


class Flunder(Camel):
    """Flunder is an example type with a spec and a status."""

    api_version: str = Field("wardle.example.com/v1beta1", alias="apiVersion")
    kind: str = "Flunder"
    metadata: ObjectMeta = ObjectMeta()
    spec: FlunderSpec
    status: FlunderStatus = FlunderStatus()


class Fischer(Camel):
    """Fischer is a cluster-scoped example type."""

    api_version: str = Field("wardle.example.com/v1beta1", alias="apiVersion")
    kind: str = "Fischer"
    metadata: ObjectMeta = ObjectMeta()
    disallowed_flunders: list[str] = Field(
        default_factory=list, description="Flunders that may not be referenced.")


FlunderSpec.model_rebuild()


@dataclass
class Kind:
    group: str
    version: str
    kind: str
    list_kind: str
    plural: str
    singular: str
    namespaced: bool
    model: type[BaseModel]
    verbs: list[str] = field(default_factory=lambda: list(ALL_VERBS))
    subresources: list[str] = field(default_factory=list)
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)


FLUNDER = Kind(GROUP, VERSION, "Flunder", "FlunderList", "flunders", "flunder", True, Flunder,
               subresources=["status"], short_names=["fl"])
FISCHER = Kind(GROUP, VERSION, "Fischer", "FischerList", "fischers", "fischer", False, Fischer)
KINDS = [FLUNDER, FISCHER]


# --------------------------------------------------------------------------- helpers


def resolve(doc: dict[str, Any], pointer: str) -> Any:
    assert pointer.startswith("#/"), pointer
    node: Any = doc
    for part in pointer[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"unresolvable $ref {pointer}"
        node = node[part]
    return node


def all_refs(value: Any) -> list[str]:
    found = []
    if isinstance(value, dict):
        if isinstance(value.get("$ref"), str):
            found.append(value["$ref"])
        for item in value.values():
            found.extend(all_refs(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(all_refs(item))
    return found


def check_refs(doc: dict[str, Any], prefix: str) -> int:
    refs = all_refs(doc)
    for ref in refs:
        if not ref.startswith("#/parameters/"):
            assert ref.startswith(prefix), ref
        resolve(doc, ref)
    return len(refs)


def schema_nodes(schema: Any) -> list[dict[str, Any]]:
    nodes = []
    if isinstance(schema, dict):
        nodes.append(schema)
        for key in ("items", "additionalProperties"):
            nodes.extend(schema_nodes(schema.get(key)))
        for sub in (schema.get("properties") or {}).values():
            nodes.extend(schema_nodes(sub))
        for sub in schema.get("allOf") or []:
            nodes.extend(schema_nodes(sub))
    return nodes


def param_names(doc: dict[str, Any], path: str, method: str) -> set[str]:
    item = doc["paths"][path]
    params = item.get("parameters", []) + item[method].get("parameters", [])
    return {(resolve(doc, p["$ref"]) if "$ref" in p else p)["name"] for p in params}


@pytest.fixture(scope="module")
def v2() -> dict[str, Any]:
    return oa.build_openapi_v2(KINDS, title="Wardle", version="0.1")


@pytest.fixture(scope="module")
def v3() -> dict[str, Any]:
    return oa.build_openapi_v3(KINDS, title="Wardle", version="0.1")


# --------------------------------------------------------------------------- definitions


def test_kind_and_list_definitions_carry_gvk(v2: dict[str, Any], v3: dict[str, Any]) -> None:
    for defs in (v2["definitions"], v3["components"]["schemas"]):
        for kind in ("Flunder", "FlunderList", "Fischer", "FischerList"):
            assert defs[PREFIX + kind]["x-kubernetes-group-version-kind"] == [
                {"group": GROUP, "kind": kind, "version": VERSION}]
        assert "x-kubernetes-group-version-kind" not in defs[PREFIX + "FlunderSpec"]
        assert defs[meta.STATUS]["x-kubernetes-group-version-kind"] == [
            {"group": "", "kind": "Status", "version": "v1"}]
    assert v2["info"] == {"title": "Wardle", "version": "0.1"}
    assert v3["info"] == {"title": "Wardle", "version": "0.1"} and v3["openapi"] == "3.0.0"


def test_definitions_are_only_the_referenced_ones(v2: dict[str, Any], v3: dict[str, Any]) -> None:
    expected_meta = {
        meta.OBJECT_META, meta.LIST_META, meta.MANAGED_FIELDS_ENTRY, meta.OWNER_REFERENCE,
        meta.TIME, meta.FIELDS_V1, meta.STATUS, meta.STATUS_DETAILS, meta.STATUS_CAUSE,
        meta.DELETE_OPTIONS, meta.PRECONDITIONS, meta.WATCH_EVENT, meta.API_RESOURCE_LIST,
        meta.API_RESOURCE, meta.PATCH, meta.RAW_EXTENSION,
    }
    discovery = {meta.API_GROUP, meta.GROUP_VERSION_FOR_DISCOVERY,
                 meta.SERVER_ADDRESS_BY_CLIENT_CIDR}
    kinds = {PREFIX + n for n in ("Flunder", "FlunderList", "FlunderSpec", "FlunderStatus",
                                  "Condition", "Fischer", "FischerList")}
    assert set(v2["definitions"]) == expected_meta | discovery | kinds
    # the group document is separate in v3; Scale is not used by these kinds
    assert set(v3["components"]["schemas"]) == expected_meta | kinds


def test_every_ref_resolves(v2: dict[str, Any], v3: dict[str, Any]) -> None:
    assert check_refs(v2, "#/definitions/") > 50
    assert check_refs(v3, "#/components/schemas/") > 50
    group_doc = oa.build_openapi_v3_group(GROUP)
    assert check_refs(group_doc, "#/components/schemas/") >= 1
    assert "#/components/schemas/" not in json.dumps(v2)
    assert "#/definitions/" not in json.dumps(v3)


def test_field_schemas_from_the_model(v3: dict[str, Any]) -> None:
    spec = v3["components"]["schemas"][PREFIX + "FlunderSpec"]
    props = spec["properties"]
    assert spec["description"] == "FlunderSpec is the specification of a Flunder."
    assert "required" not in spec  # every field has a default
    assert props["flunderReference"] == {
        "type": "string",
        "description": "A name of another flunder, exclusive with fischerReference."}
    assert props["referenceType"]["enum"] == ["Flunder", "Fischer"]
    assert props["referenceType"]["type"] == "string"
    assert props["referenceType"]["default"] == "Flunder"
    assert props["replicas"] == {"type": "integer", "format": "int64", "minimum": 0,
                                 "maximum": 10, "default": 1}
    assert props["port"] == {"x-kubernetes-int-or-string": True, "default": 80}
    assert props["color"] == {"type": "string", "enum": ["red", "blue"]}
    assert props["weight"]["type"] == "number"
    assert props["labels"]["additionalProperties"] == {"type": "string"}
    assert props["raw"]["x-kubernetes-preserve-unknown-fields"] is True
    assert props["tags"]["items"] == {"type": "string", "minLength": 1}
    conditions = props["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert "examples" not in conditions  # only x- keys of json_schema_extra are OpenAPI
    assert conditions["items"] == {"$ref": f"#/components/schemas/{PREFIX}Condition"}
    condition = v3["components"]["schemas"][PREFIX + "Condition"]
    assert condition["required"] == ["type"]
    assert condition["properties"]["lastTransitionTime"] == {"type": "string",
                                                             "format": "date-time"}


def test_top_level_fields(v2: dict[str, Any], v3: dict[str, Any]) -> None:
    flunder = v3["components"]["schemas"][PREFIX + "Flunder"]
    props = flunder["properties"]
    assert flunder["required"] == ["spec"]
    assert flunder["description"] == "Flunder is an example type with a spec and a status."
    assert props["apiVersion"]["type"] == props["kind"]["type"] == "string"
    assert "enum" not in props["apiVersion"] and "default" not in props["kind"]
    # metadata is the standard ObjectMeta, wrapped in allOf because it has siblings
    assert props["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]
    assert props["metadata"]["description"].startswith("Standard object's metadata")
    assert "$ref" not in props["metadata"]
    assert props["spec"] == {"$ref": f"#/components/schemas/{PREFIX}FlunderSpec"}
    assert props["status"] == {"allOf": [{"$ref": f"#/components/schemas/{PREFIX}FlunderStatus"}],
                               "default": {"phase": "Pending"}}
    assert PREFIX + "ObjectMeta" not in v3["components"]["schemas"]
    fischer = v3["components"]["schemas"][PREFIX + "Fischer"]["properties"]
    assert fischer["disallowedFlunders"] == {
        "type": "array", "items": {"type": "string"},
        "description": "Flunders that may not be referenced."}
    # v2: description beside the $ref, no defaults anywhere
    v2_props = v2["definitions"][PREFIX + "Flunder"]["properties"]
    assert v2_props["metadata"]["$ref"] == "#/definitions/" + meta.OBJECT_META
    assert "description" in v2_props["metadata"]
    for schema in v2["definitions"].values():
        assert all("default" not in node for node in schema_nodes(schema))


def test_list_definition(v3: dict[str, Any]) -> None:
    lst = v3["components"]["schemas"][PREFIX + "FlunderList"]
    assert lst["required"] == ["items"]
    assert lst["properties"]["items"]["items"] == {"$ref": f"#/components/schemas/{PREFIX}Flunder"}
    assert lst["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/" + meta.LIST_META}]


def test_cross_registered_meta_gvks() -> None:
    other = Kind(GROUP, "v1alpha1", "Flunder", "FlunderList", "flunders", "flunder", True, Flunder)
    v2 = oa.build_openapi_v2([FLUNDER, other])
    expected = [{"group": "", "kind": "DeleteOptions", "version": "v1"},
                {"group": GROUP, "kind": "DeleteOptions", "version": "v1alpha1"},
                {"group": GROUP, "kind": "DeleteOptions", "version": "v1beta1"}]
    assert v2["definitions"][meta.DELETE_OPTIONS]["x-kubernetes-group-version-kind"] == expected
    assert "com.example.wardle.v1alpha1.FlunderSpec" in v2["definitions"]
    v3 = oa.build_openapi_v3([other])
    assert v3["components"]["schemas"][meta.WATCH_EVENT]["x-kubernetes-group-version-kind"] == [
        {"group": "", "kind": "WatchEvent", "version": "v1"},
        {"group": GROUP, "kind": "WatchEvent", "version": "v1alpha1"}]
    with pytest.raises(ValueError, match="one group version"):
        oa.build_openapi_v3([FLUNDER, other])


def test_standard_models_enum_literals_and_implicit_type_meta(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oa, "_STANDARD_MODELS", {})
    oa.register_standard_model(ObjectMeta, meta.OBJECT_META)
    with pytest.raises(ValueError, match="unknown standard definition"):
        oa.register_standard_model(Condition, "io.k8s.nothing.Here")

    class Template(Camel):
        """Template of the objects a Pool creates."""
        metadata: ObjectMeta = Field(ObjectMeta(), description="Metadata of created objects.")
        color: Literal[Color.RED] = Color.RED

    class Pool(Camel):  # no apiVersion/kind/metadata fields: the server adds them
        template: Template

    v3 = oa.build_openapi_v3([Kind(GROUP, VERSION, "Pool", "PoolList", "pools", "pool", True,
                                   Pool, verbs=["get"])])
    schemas = v3["components"]["schemas"]
    pool = schemas[PREFIX + "Pool"]["properties"]
    assert set(pool) == {"apiVersion", "kind", "metadata", "template"}
    assert pool["metadata"]["allOf"] == [{"$ref": "#/components/schemas/" + meta.OBJECT_META}]
    template = schemas[PREFIX + "Template"]["properties"]
    assert template["metadata"]["allOf"] == [{"$ref": "#/components/schemas/" + meta.OBJECT_META}]
    assert template["metadata"]["description"] == "Metadata of created objects."
    assert template["metadata"]["default"] == {}
    assert template["color"] == {"type": "string", "enum": ["red"], "default": "red"}
    assert PREFIX + "ObjectMeta" not in schemas
    OpenAPIV30SpecValidator(v3).validate()


def test_unsupported_and_conflicting_models_are_rejected() -> None:
    class Bad(Camel):
        value: int | float = 1

    class BadKind(Camel):
        spec: Bad

    with pytest.raises(TypeError, match="unions"):
        oa.build_openapi_v2([Kind(GROUP, VERSION, "Broken", "BrokenList", "brokens", "broken",
                                  True, BadKind)])

    def spec_class() -> type[BaseModel]:
        class FlunderSpec(Camel):  # same name as the module-level one
            other: str = ""
        return FlunderSpec

    other_spec = spec_class()

    class Clash(Camel):
        mine: other_spec  # type: ignore[valid-type]
        theirs: FlunderSpec

    with pytest.raises(ValueError, match="distinct model_config"):
        oa.build_openapi_v2([Kind(GROUP, VERSION, "Clash", "ClashList", "clashes", "clash",
                                  True, Clash)])


# --------------------------------------------------------------------------- paths


def test_namespaced_paths_and_operations(v2: dict[str, Any]) -> None:
    paths = v2["paths"]
    collection = f"{BASE}/namespaces/{{namespace}}/flunders"
    item = collection + "/{name}"
    assert set(paths[collection]) == {"get", "post", "delete", "parameters"}
    assert set(paths[item]) == {"get", "put", "patch", "delete", "parameters"}
    assert set(paths[item + "/status"]) == {"get", "put", "patch", "parameters"}
    assert set(paths[f"{BASE}/flunders"]) == {"get", "parameters"}
    assert f"{BASE}/watch/namespaces/{{namespace}}/flunders/{{name}}" in paths
    assert f"{BASE}/watch/flunders" in paths
    op_ids = {op["operationId"]: (path, method, op.get("x-kubernetes-action"))
              for path, item_ in paths.items() for method, op in item_.items()
              if method != "parameters"}
    base = "WardleExampleComV1beta1"
    assert op_ids[f"list{base}NamespacedFlunder"] == (collection, "get", "list")
    assert op_ids[f"create{base}NamespacedFlunder"] == (collection, "post", "post")
    assert op_ids[f"delete{base}CollectionNamespacedFlunder"] == (collection, "delete",
                                                                  "deletecollection")
    assert op_ids[f"read{base}NamespacedFlunder"] == (item, "get", "get")
    assert op_ids[f"replace{base}NamespacedFlunder"] == (item, "put", "put")
    assert op_ids[f"patch{base}NamespacedFlunder"] == (item, "patch", "patch")
    assert op_ids[f"delete{base}NamespacedFlunder"] == (item, "delete", "delete")
    assert op_ids[f"read{base}NamespacedFlunderStatus"] == (item + "/status", "get", "get")
    assert op_ids[f"patch{base}NamespacedFlunderStatus"][2] == "patch"
    assert op_ids[f"list{base}FlunderForAllNamespaces"] == (f"{BASE}/flunders", "get", "list")
    assert op_ids[f"watch{base}NamespacedFlunderList"][2] == "watchlist"
    assert op_ids[f"watch{base}NamespacedFlunder"][2] == "watch"
    assert op_ids[f"watch{base}FlunderListForAllNamespaces"][0] == f"{BASE}/watch/flunders"
    assert op_ids[f"get{base}APIResources"] == (f"{BASE}/", "get", None)
    assert op_ids["getWardleExampleComAPIGroup"] == (f"/apis/{GROUP}/", "get", None)
    for path, item_ in paths.items():
        for method, op in item_.items():
            if method == "parameters":
                continue
            assert op["responses"]["401"] == {"description": "Unauthorized"}
            assert op["schemes"] == ["https"]
            if path.endswith(f"/{VERSION}/") or path.endswith(f"{GROUP}/"):
                assert op["tags"] == (["wardleExampleCom_v1beta1"] if VERSION in path
                                      else ["wardleExampleCom"])
                continue
            assert op["tags"] == ["wardleExampleCom_v1beta1"]
            assert op["x-kubernetes-group-version-kind"]["version"] == VERSION


def test_cluster_scoped_paths(v2: dict[str, Any]) -> None:
    paths = v2["paths"]
    fischer_paths = sorted(p for p in paths if "fischers" in p)
    assert fischer_paths == [f"{BASE}/fischers", f"{BASE}/fischers/{{name}}",
                             f"{BASE}/watch/fischers", f"{BASE}/watch/fischers/{{name}}"]
    assert paths[f"{BASE}/fischers"]["get"]["operationId"] == "listWardleExampleComV1beta1Fischer"
    assert "namespace" not in param_names(v2, f"{BASE}/fischers/{{name}}", "get")
    assert "namespace" in param_names(v2, f"{BASE}/namespaces/{{namespace}}/flunders/{{name}}",
                                      "get")
    assert paths[f"{BASE}/fischers"]["post"]["description"] == "create a Fischer"


def test_parameters_per_operation(v2: dict[str, Any]) -> None:
    collection = f"{BASE}/namespaces/{{namespace}}/flunders"
    item = collection + "/{name}"
    assert param_names(v2, collection, "get") == {
        "namespace", "pretty", "allowWatchBookmarks", "continue", "fieldSelector",
        "labelSelector", "limit", "resourceVersion", "resourceVersionMatch",
        "sendInitialEvents", "timeoutSeconds", "watch"}
    assert param_names(v2, collection, "post") == {"namespace", "pretty", "body", "dryRun",
                                                   "fieldManager", "fieldValidation"}
    delete_collection = param_names(v2, collection, "delete")
    assert {"gracePeriodSeconds", "propagationPolicy", "labelSelector", "body"} <= delete_collection
    assert not {"watch", "allowWatchBookmarks"} & delete_collection
    assert param_names(v2, item, "patch") == {"name", "namespace", "pretty", "body", "dryRun",
                                              "fieldManager", "fieldValidation", "force"}
    patch = v2["paths"][item]["patch"]
    assert patch["consumes"] == ["application/json-patch+json", "application/merge-patch+json",
                                 "application/strategic-merge-patch+json",
                                 "application/apply-patch+yaml"]
    assert v2["paths"][collection]["get"]["produces"] == [
        "application/json", "application/yaml", "application/json;stream=watch"]
    # path-level parameters are those every operation of the path has
    assert [p["name"] for p in (resolve(v2, x["$ref"]) if "$ref" in x else x
                                for x in v2["paths"][item]["parameters"])] == [
        "name", "namespace", "pretty"]
    # kube keeps name/dryRun/fieldValidation and kind bodies inline, shares the rest
    inline = {p["name"] for p in patch["parameters"] if "$ref" not in p}
    assert inline == {"dryRun", "fieldValidation"}
    create_body = next(p for p in v2["paths"][collection]["post"]["parameters"]
                       if p.get("name") == "body")
    assert create_body == {"name": "body", "in": "body", "required": True,
                           "schema": {"$ref": f"#/definitions/{PREFIX}Flunder"}}
    delete_body = resolve(v2, next(p["$ref"] for p in v2["paths"][item]["delete"]["parameters"]
                                   if p.get("$ref", "").startswith("#/parameters/body-")))
    assert delete_body == {"name": "body", "in": "body",
                           "schema": {"$ref": "#/definitions/" + meta.DELETE_OPTIONS}}
    responses = v2["paths"][collection]["post"]["responses"]
    assert sorted(responses) == ["200", "201", "202", "401"]


def test_verbs_select_operations() -> None:
    readonly = Kind(GROUP, VERSION, "Fischer", "FischerList", "fischers", "fischer", False,
                    Fischer, verbs=["get", "list"])
    paths = oa.build_openapi_v3([readonly])["paths"]
    assert sorted(paths) == [f"{BASE}/", f"{BASE}/fischers", f"{BASE}/fischers/{{name}}"]
    assert set(paths[f"{BASE}/fischers"]) == {"get", "parameters"}
    assert paths[f"{BASE}/fischers"]["get"]["description"] == "list objects of kind Fischer"


def test_v3_operations(v3: dict[str, Any]) -> None:
    item = f"{BASE}/namespaces/{{namespace}}/flunders/{{name}}"
    patch = v3["paths"][item]["patch"]
    assert set(patch["requestBody"]["content"]) == {
        "application/json-patch+json", "application/merge-patch+json",
        "application/strategic-merge-patch+json", "application/apply-patch+yaml"}
    assert patch["requestBody"]["required"] is True
    assert patch["x-kubernetes-group-version-kind"] == {"group": GROUP, "kind": "Flunder",
                                                        "version": VERSION}
    # kubectl looks for fieldValidation among the PATCH operation's own parameters
    assert any(p["name"] == "fieldValidation" and p["schema"] == {"type": "string",
                                                                  "uniqueItems": True}
               for p in patch["parameters"])
    put = v3["paths"][item]["put"]
    assert put["requestBody"]["content"] == {
        "*/*": {"schema": {"$ref": f"#/components/schemas/{PREFIX}Flunder"}}}
    delete = v3["paths"][item]["delete"]
    assert "required" not in delete["requestBody"]
    assert set(delete["responses"]["202"]["content"]) == {"application/json", "application/yaml"}
    watch = v3["paths"][f"{BASE}/watch/namespaces/{{namespace}}/flunders"]["get"]
    assert watch["responses"]["200"]["content"]["application/json;stream=watch"] == {
        "schema": {"$ref": "#/components/schemas/" + meta.WATCH_EVENT}}
    discovery = v3["paths"][f"{BASE}/"]["get"]
    assert discovery["operationId"] == "getWardleExampleComV1beta1APIResources"
    assert f"/apis/{GROUP}/" not in v3["paths"]
    group_doc = oa.build_openapi_v3_group(GROUP)
    assert list(group_doc["paths"]) == [f"/apis/{GROUP}/"]
    assert set(group_doc["components"]["schemas"]) == {
        meta.API_GROUP, meta.GROUP_VERSION_FOR_DISCOVERY, meta.SERVER_ADDRESS_BY_CLIENT_CIDR}


def test_scale_subresource() -> None:
    scaled = Kind(GROUP, VERSION, "Flunder", "FlunderList", "flunders", "flunder", True,
                  Flunder, subresources=["status", "scale"])
    v3 = oa.build_openapi_v3([scaled])
    scale = v3["paths"][f"{BASE}/namespaces/{{namespace}}/flunders/{{name}}/scale"]
    assert scale["get"]["operationId"] == "readWardleExampleComV1beta1NamespacedFlunderScale"
    assert scale["put"]["x-kubernetes-group-version-kind"] == {
        "group": "autoscaling", "kind": "Scale", "version": "v1"}
    assert v3["components"]["schemas"][meta.SCALE]["x-kubernetes-group-version-kind"] == [
        {"group": "autoscaling", "kind": "Scale", "version": "v1"}]
    assert check_refs(v3, "#/components/schemas/") > 0


def test_documents_validate_with_openapi_spec_validator(v2: dict[str, Any],
                                                        v3: dict[str, Any]) -> None:
    OpenAPIV2SpecValidator(v2).validate()
    OpenAPIV30SpecValidator(v3).validate()
    OpenAPIV30SpecValidator(oa.build_openapi_v3_group(GROUP)).validate()


# --------------------------------------------------------------------------- /openapi/v3 index


def test_v3_index_hashes_match_the_served_bytes() -> None:
    docs = oa.build_openapi_documents(KINDS, title="Wardle", version="0.1")
    index = orjson.loads(docs.v3_discovery)
    assert set(index["paths"]) == {f"apis/{GROUP}/{VERSION}", f"apis/{GROUP}"}
    for key, entry in index["paths"].items():
        digest = hashlib.sha512(docs.v3[key]).hexdigest().upper()
        assert entry == {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
        assert len(digest) == 128 and digest == digest.upper()
    assert orjson.loads(docs.v3[f"apis/{GROUP}/{VERSION}"]) == oa.build_openapi_v3(
        KINDS, title="Wardle", version="0.1")
    assert docs.v2_hash == hashlib.sha512(docs.v2).hexdigest().upper()
    assert docs.v3_discovery_hash == hashlib.sha512(docs.v3_discovery).hexdigest().upper()
    # building twice gives the same bytes (stable hashes across restarts and replicas)
    assert oa.build_openapi_documents(KINDS, title="Wardle", version="0.1") == docs


def test_v3_response_rules() -> None:
    docs = oa.build_openapi_documents(KINDS)
    key = f"apis/{GROUP}/{VERSION}"
    digest = docs.v3_hashes[key]
    status, body, headers = docs.v3_response(key, None)
    assert (status, body) == (200, docs.v3[key])
    assert headers["ETag"] == f'"{digest}"' and "Cache-Control" not in headers
    status, body, headers = docs.v3_response(key, digest)
    assert status == 200 and headers["Cache-Control"] == "public, immutable"
    assert headers["Expires"].endswith(" GMT")
    status, _, headers = docs.v3_response(key, "0BAD")
    assert status == 301 and headers["Location"] == f"/openapi/v3/{key}?hash={digest}"
    assert docs.v3_response("apis/other/v1", None)[0] == 404


# --------------------------------------------------------------------------- real kubectl


class StubServer:
    """Just enough of an API server (discovery + OpenAPI + create) for kubectl."""

    def __init__(self, docs: oa.OpenAPIDocuments) -> None:
        self.docs = docs
        self.created: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api", self._json({"kind": "APIVersions", "versions": ["v1"]}))
        app.router.add_get("/api/v1", self._json(
            {"kind": "APIResourceList", "groupVersion": "v1", "resources": []}))
        gv = {"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION}
        app.router.add_get("/apis", self._json({
            "kind": "APIGroupList", "apiVersion": "v1",
            "groups": [{"name": GROUP, "versions": [gv], "preferredVersion": gv}]}))
        app.router.add_get(BASE, self._json({
            "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{GROUP}/{VERSION}",
            "resources": [
                {"name": "flunders", "singularName": "flunder", "namespaced": True,
                 "kind": "Flunder", "verbs": ALL_VERBS, "shortNames": ["fl"]},
                {"name": "flunders/status", "singularName": "", "namespaced": True,
                 "kind": "Flunder", "verbs": ["get", "patch", "update"]},
                {"name": "fischers", "singularName": "fischer", "namespaced": False,
                 "kind": "Fischer", "verbs": ALL_VERBS}]}))
        app.router.add_get("/openapi/v2", self._bytes(self.docs.v2))
        app.router.add_get("/openapi/v3", self._bytes(self.docs.v3_discovery))
        app.router.add_get("/openapi/v3/{key:.+}", self._v3)
        app.router.add_post(f"{BASE}/namespaces/{{ns}}/flunders", self._create)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @staticmethod
    def _json(body: dict[str, Any]) -> Any:
        async def handler(_: web.Request) -> web.Response:
            return web.json_response(body)
        return handler

    @staticmethod
    def _bytes(body: bytes) -> Any:
        async def handler(_: web.Request) -> web.Response:
            return web.Response(body=body, content_type="application/json")
        return handler

    async def _v3(self, request: web.Request) -> web.Response:
        status, body, headers = self.docs.v3_response(request.match_info["key"],
                                                      request.query.get("hash"))
        headers.pop("Content-Type", None)
        return web.Response(status=status, body=body, headers=headers,
                            content_type="application/json")

    async def _create(self, request: web.Request) -> web.Response:
        obj = await request.json()
        self.created.append((request.path, dict(request.query), obj))
        obj.setdefault("metadata", {}).update(
            {"namespace": request.match_info["ns"], "uid": "u-1", "resourceVersion": "1"})
        return web.json_response(obj, status=201)

    @staticmethod
    async def _not_found(request: web.Request) -> web.Response:
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                  "reason": "NotFound", "code": 404,
                                  "message": f"{request.path} not found"}, status=404)


@pytest.fixture
async def kubectl(tmp_path: Path) -> Any:
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl is not installed")
    server = StubServer(oa.build_openapi_documents(KINDS, title="Wardle", version="0.1"))
    await server.start()
    config = tmp_path / "kubeconfig"
    config.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "stub",
        "clusters": [{"name": "stub", "cluster": {"server": f"http://127.0.0.1:{server.port}"}}],
        "users": [{"name": "stub", "user": {}}],
        "contexts": [{"name": "stub", "context": {"cluster": "stub", "user": "stub",
                                                  "namespace": "default"}}]}))

    async def run(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            binary, f"--kubeconfig={config}", f"--cache-dir={tmp_path / 'cache'}", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        return proc.returncode or 0, out.decode(), err.decode()

    run.server = server  # type: ignore[attr-defined]
    run.tmp_path = tmp_path  # type: ignore[attr-defined]
    try:
        yield run
    finally:
        await server.stop()


async def test_kubectl_explain_reads_the_v3_documents(kubectl: Any) -> None:
    code, out, err = await kubectl("explain", "flunders")
    assert code == 0, err
    assert f"GROUP:      {GROUP}" in out
    assert "KIND:       Flunder" in out and f"VERSION:    {VERSION}" in out
    assert "Flunder is an example type with a spec and a status." in out
    assert "spec\t<FlunderSpec> -required-" in out
    assert "metadata\t<ObjectMeta>" in out

    code, out, err = await kubectl("explain", "flunders.spec")
    assert code == 0, err
    assert "FIELD: spec <FlunderSpec>" in out
    assert "FlunderSpec is the specification of a Flunder." in out
    assert "referenceType\t<string>" in out and "enum: Flunder, Fischer" in out
    assert "The kind of the reference." in out
    assert "conditions\t<[]Condition>" in out

    code, out, err = await kubectl("explain", "flunders.metadata.ownerReferences")
    assert code == 0, err
    assert "uid\t<string> -required-" in out

    code, out, err = await kubectl("explain", "fischers.disallowedFlunders")
    assert code == 0, err
    assert "FIELD: disallowedFlunders <[]string>" in out
    assert "Flunders that may not be referenced." in out


async def test_kubectl_apply_detects_server_side_field_validation(kubectl: Any) -> None:
    manifest = kubectl.tmp_path / "flunder.json"
    manifest.write_text(json.dumps({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Flunder",
        "metadata": {"name": "one"}, "spec": {"referenceType": "Flunder"}}))
    code, out, err = await kubectl("apply", "--validate=strict", "-f", str(manifest))
    assert code == 0, err
    assert "flunder.wardle.example.com/one created" in out
    [(path, query, body)] = kubectl.server.created
    assert path == f"{BASE}/namespaces/default/flunders"
    # kubectl found fieldValidation on the Flunder PATCH operation of /openapi/v3 and so
    # leaves validation to the server instead of validating client-side
    assert query.get("fieldValidation") == "Strict"
    assert body["spec"] == {"referenceType": "Flunder"}
