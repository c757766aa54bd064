"""Aggregated discovery on ``/apis`` (issue 3, item 7): ``apidiscovery.k8s.io`` v2 and
v2beta1 as the client's ``Accept`` asks, ``ETag`` / ``If-None-Match`` -> 304, the plain
``APIGroupList`` otherwise."""
from __future__ import annotations

import shutil

import pytest

from tests.e2e.harness import API, ServerProcess, new_tmp_dir

V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"


@pytest.fixture(scope="module")
def api():
    srv = ServerProcess(new_tmp_dir("extserver-disco-"),
                        extra_args=["--api-module", "tests.e2e.widgets", "--api-module", "tests.e2e.faulty"]).start()
    yield API(srv)
    srv.stop()
    shutil.rmtree(srv.data_dir, ignore_errors=True)


@pytest.mark.parametrize("accept,version", [
    (f"{V2},{V2BETA1},application/json", "v2"),
    (f"{V2BETA1},{V2},application/json", "v2beta1"),  # the client's order decides
    (f"{V2BETA1},application/json", "v2beta1"),
    (f"{V2};q=0.5,{V2BETA1},application/json", "v2beta1"),
])
def test_the_version_the_client_prefers(api, accept, version):
    r = api.get("/apis", headers={"Accept": accept})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"
    assert r.headers["Vary"] == "Accept"
    doc = r.json()
    assert doc["kind"] == "APIGroupDiscoveryList" and doc["apiVersion"] == f"apidiscovery.k8s.io/{version}"


@pytest.mark.parametrize("accept", ["application/json",
                                    "application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList,"
                                    "application/json",
                                    "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;"
                                    "as=APIGroupDiscoveryList,application/json"])
def test_plain_group_list_otherwise(api, accept):
    r = api.get("/apis", headers={"Accept": accept})
    assert r.status_code == 200 and r.json()["kind"] == "APIGroupList"
    assert "ETag" not in r.headers


def test_document_describes_every_resource(api):
    doc = api.get("/apis", headers={"Accept": V2}).json()
    items = {i["metadata"]["name"]: i for i in doc["items"]}
    assert set(items) >= {"wardle.example.com", "demo.extserver.io", "faulty.extserver.io"}
    wardle = items["wardle.example.com"]
    assert [v["version"] for v in wardle["versions"]] == ["v1beta1", "v1alpha1"]  # preferred first
    assert all(v["freshness"] == "Current" for v in wardle["versions"])
    v1alpha1 = {r["resource"]: r for r in wardle["versions"][1]["resources"]}
    fl = v1alpha1["flunders"]
    assert fl["scope"] == "Namespaced" and fl["singularResource"] == "flunder"
    assert fl["responseKind"] == {"group": "wardle.example.com", "version": "v1alpha1", "kind": "Flunder"}
    assert set(fl["verbs"]) == {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
    assert fl["shortNames"] == ["fl"]
    assert fl["subresources"] == [{"subresource": "status", "responseKind": {
        "group": "wardle.example.com", "version": "v1alpha1", "kind": "Flunder"}, "verbs": ["get", "patch", "update"]}]
    assert v1alpha1["fischers"]["scope"] == "Cluster"
    widgets = {r["resource"]: r for r in items["demo.extserver.io"]["versions"][0]["resources"]}
    assert widgets["widgets"]["shortNames"] == ["wd"]


def test_etag_and_if_none_match(api):
    r = api.get("/apis", headers={"Accept": V2})
    etag = r.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2
    again = api.get("/apis", headers={"Accept": V2, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == etag
    assert api.get("/apis", headers={"Accept": V2, "If-None-Match": '"stale"'}).status_code == 200
    # each version has its own document and tag
    beta = api.get("/apis", headers={"Accept": V2BETA1})
    assert beta.headers["ETag"] != etag
    assert api.get("/apis", headers={"Accept": V2BETA1, "If-None-Match": etag}).status_code == 200
