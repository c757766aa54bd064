"""The API contract (SPEC §4-6) against the real server process over HTTPS, on both storage
backends (the ``server`` fixture is parametrised)."""
from __future__ import annotations

import json
import yaml

from tests.e2e.harness import FL_A, FL_B, flunder

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def fl_path(ns: str, name: str = "", version: str = "v1beta1") -> str:
    base = f"/apis/wardle.example.com/{version}/namespaces/{ns}/flunders"
    return f"{base}/{name}" if name else base


def create(api, ns, name, **kw):
    r = api.post(fl_path(ns), flunder(name, **kw))
    assert r.status_code == 201, r.text
    return r.json()


# --- discovery -----------------------------------------------------------------------
def test_discovery(api):
    groups = api.get("/apis").json()
    assert groups["kind"] == "APIGroupList"
    wardle = [g for g in groups["groups"] if g["name"] == "wardle.example.com"][0]
    assert wardle["preferredVersion"] == {"groupVersion": "wardle.example.com/v1beta1", "version": "v1beta1"}
    assert [v["version"] for v in wardle["versions"]] == ["v1beta1", "v1alpha1"]
    g = api.get("/apis/wardle.example.com").json()
    assert g["kind"] == "APIGroup" and g["name"] == "wardle.example.com"
    rl = api.get(FL_B).json()
    assert rl["kind"] == "APIResourceList" and rl["groupVersion"] == "wardle.example.com/v1beta1"
    res = {r["name"]: r for r in rl["resources"]}
    assert res["flunders"]["namespaced"] is True and res["flunders"]["kind"] == "Flunder"
    assert res["flunders"]["shortNames"] == ["fl"] and res["flunders"]["singularName"] == "flunder"
    assert set(res["flunders"]["verbs"]) == {"create", "delete", "deletecollection", "get", "list", "patch",
                                             "update", "watch"}
    assert "flunders/status" in res and "fischers" not in res
    res_a = {r["name"]: r for r in api.get(FL_A).json()["resources"]}
    assert res_a["fischers"]["namespaced"] is False and res_a["fischers"]["kind"] == "Fischer"


def test_aggregated_discovery_and_etag(api):
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    r = api.get("/apis", headers={"Accept": accept})
    assert r.status_code == 200
    assert "as=APIGroupDiscoveryList" in r.headers["Content-Type"]
    doc = r.json()
    assert doc["kind"] == "APIGroupDiscoveryList"
    item = [i for i in doc["items"] if i["metadata"]["name"] == "wardle.example.com"][0]
    assert item["versions"][0]["version"] == "v1beta1"
    r2 = api.get("/apis", headers={"Accept": accept, "If-None-Match": r.headers["ETag"]})
    assert r2.status_code == 304


def test_unknown_paths_404(api):
    r = api.get("/apis/nope.example.com/v1/things")
    assert r.status_code == 404 and r.json()["reason"] == "NotFound"
    r = api.get(f"{FL_B}/nothings")
    assert r.status_code == 404 and r.json()["kind"] == "Status"


# --- create / get --------------------------------------------------------------------
def test_create_sets_server_fields_and_get(api, ns):
    obj = create(api, ns, "f1", labels={"app": "x"})
    md = obj["metadata"]
    assert md["name"] == "f1" and md["namespace"] == ns
    assert len(md["uid"]) == 36 and md["generation"] == 1
    assert md["creationTimestamp"].endswith("Z") and int(md["resourceVersion"]) > 0
    assert obj["apiVersion"] == "wardle.example.com/v1beta1" and obj["kind"] == "Flunder"
    got = api.get(fl_path(ns, "f1")).json()
    assert got == obj


def test_generate_name(api, ns):
    body = flunder("")
    body["metadata"] = {"generateName": "gen-"}
    r = api.post(fl_path(ns), body)
    assert r.status_code == 201, r.text
    name = r.json()["metadata"]["name"]
    assert name.startswith("gen-") and len(name) == len("gen-") + 5


def test_get_not_found_status(api, ns):
    r = api.get(fl_path(ns, "missing"))
    assert r.status_code == 404
    st = r.json()
    assert st == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                  "message": 'flunders.wardle.example.com "missing" not found', "reason": "NotFound",
                  "details": {"name": "missing", "group": "wardle.example.com", "kind": "flunders"}, "code": 404}


def test_already_exists(api, ns):
    create(api, ns, "dup")
    r = api.post(fl_path(ns), flunder("dup"))
    assert r.status_code == 409
    assert r.json()["reason"] == "AlreadyExists"
    assert r.json()["message"] == 'flunders.wardle.example.com "dup" already exists'


def test_invalid_names(api, ns):
    for bad in ["a" * 254, "Upper", "a/b", "a_b", "-a"]:
        r = api.post(fl_path(ns), flunder(bad))
        assert r.status_code == 422, (bad, r.text)
        st = r.json()
        assert st["reason"] == "Invalid" and st["details"]["causes"][0]["field"] == "metadata.name"
    assert api.get(fl_path(ns)).json()["items"] == []


def test_path_traversal_in_name_is_refused(api, ns):
    for bad in ["..", "%2e%2e", "a%2Fb", "%2F"]:
        r = api.req("GET", fl_path(ns) + "/" + bad)
        assert r.status_code in (400, 404), (bad, r.status_code)
        assert r.json()["kind"] == "Status"
    r = api.req("DELETE", fl_path(ns) + "/%2e%2e")
    assert r.status_code in (400, 404)


def test_namespace_mismatch_and_wrong_kind(api, ns):
    r = api.post(fl_path(ns), flunder("x", ns="other"))
    assert r.status_code == 400 and r.json()["reason"] == "BadRequest"
    body = flunder("x")
    body["kind"] = "Fischer"
    r = api.post(fl_path(ns), body)
    assert r.status_code == 400 and r.json()["reason"] == "BadRequest"
    body = flunder("x")
    body["apiVersion"] = "other.example.com/v1"
    r = api.post(fl_path(ns), body)
    assert r.status_code == 400
    assert api.get(fl_path(ns)).json()["items"] == []


def test_v1beta1_validation_matches_sample(api, ns):
    r = api.post(fl_path(ns), flunder("bad", spec={"flunderReference": "a", "fischerReference": "b",
                                                   "referenceType": "Flunder"}))
    assert r.status_code == 422
    st = r.json()
    assert st["message"] == ('Flunder.wardle.example.com "bad" is invalid: spec.fischerReference: '
                             'Invalid value: "b": cannot be set with flunderReference at the same time')
    assert st["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "spec.fischerReference",
                                        "message": 'Invalid value: "b": cannot be set with flunderReference at the same time'}]
    r = api.post(fl_path(ns), flunder("bad2", spec={"referenceType": "Other"}))
    assert r.status_code == 422
    assert "must be Flunder or Fischer" in r.json()["message"]
    assert api.get(fl_path(ns, "bad")).status_code == 404


def test_ban_flunder_admission(api, ns):
    fischer = {"apiVersion": "wardle.example.com/v1alpha1", "kind": "Fischer",
               "metadata": {"name": f"ban-{ns}"}, "disallowedFlunders": [f"banned-{ns}"]}
    r = api.post(f"{FL_A}/fischers", fischer)
    assert r.status_code == 201, r.text
    r = api.post(fl_path(ns), flunder(f"banned-{ns}"))
    assert r.status_code == 403
    st = r.json()
    assert st["reason"] == "Forbidden"
    assert st["message"] == (f'flunders.wardle.example.com "banned-{ns}" is forbidden: '
                             f'this name may not be used, please change the resource name')
    assert api.get(fl_path(ns, f"banned-{ns}")).status_code == 404
    assert api.delete(f"{FL_A}/fischers/ban-{ns}").status_code == 200
    assert api.post(fl_path(ns), flunder(f"banned-{ns}")).status_code == 201


# --- versions ------------------------------------------------------------------------
def test_version_round_trip_loses_nothing(api, ns):
    a = {"apiVersion": "wardle.example.com/v1alpha1", "kind": "Flunder",
         "metadata": {"name": "conv", "labels": {"k": "v"}, "annotations": {"a": "b"}},
         "spec": {"reference": "other"}}
    r = api.post(fl_path(ns, version="v1alpha1"), a)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["spec"] == {"reference": "other", "referenceType": "Flunder"}  # defaulted
    b = api.get(fl_path(ns, "conv")).json()
    assert b["apiVersion"] == "wardle.example.com/v1beta1"
    assert b["spec"] == {"flunderReference": "other", "referenceType": "Flunder"}
    assert b["metadata"] == created["metadata"]
    # update through v1beta1 to a fischer reference, read back as v1alpha1
    b["spec"] = {"fischerReference": "fi", "referenceType": "Fischer"}
    r = api.put(fl_path(ns, "conv"), b)
    assert r.status_code == 200, r.text
    a2 = api.get(fl_path(ns, "conv", version="v1alpha1")).json()
    assert a2["spec"] == {"reference": "fi", "referenceType": "Fischer"}
    assert a2["metadata"]["labels"] == {"k": "v"} and a2["metadata"]["annotations"] == {"a": "b"}
    assert a2["metadata"]["generation"] == 2
    # and back: v1alpha1 -> v1beta1 -> v1alpha1 is the identity
    again = api.put(fl_path(ns, "conv", version="v1alpha1"), a2).json()
    assert again == a2  # a no-op update writes nothing


# --- update ----------------------------------------------------------------------------
def test_update_conflict_and_generation(api, ns):
    obj = create(api, ns, "u1")
    rv = obj["metadata"]["resourceVersion"]
    obj["metadata"]["labels"] = {"a": "1"}
    r = api.put(fl_path(ns, "u1"), obj)
    assert r.status_code == 200
    upd = r.json()
    assert upd["metadata"]["generation"] == 1  # metadata-only change
    assert int(upd["metadata"]["resourceVersion"]) > int(rv)
    obj["metadata"]["resourceVersion"] = rv  # stale
    r = api.put(fl_path(ns, "u1"), obj)
    assert r.status_code == 409 and r.json()["reason"] == "Conflict"
    assert r.json()["message"] == ('Operation cannot be fulfilled on flunders.wardle.example.com "u1": the object '
                                   'has been modified; please apply your changes to the latest version and try again')
    upd["spec"] = {"flunderReference": "z", "referenceType": "Flunder"}
    r = api.put(fl_path(ns, "u1"), upd)
    assert r.json()["metadata"]["generation"] == 2
    # server-owned fields are kept
    body = r.json()
    body["metadata"]["uid"] = "00000000-0000-0000-0000-000000000000"
    body["metadata"]["creationTimestamp"] = "2001-01-01T00:00:00Z"
    r = api.put(fl_path(ns, "u1"), body)
    assert r.status_code in (200, 422)
    cur = api.get(fl_path(ns, "u1")).json()
    assert cur["metadata"]["uid"] == obj["metadata"]["uid"]
    assert cur["metadata"]["creationTimestamp"] == obj["metadata"]["creationTimestamp"]


def test_update_requires_resource_version(api, ns):
    obj = create(api, ns, "u2")
    del obj["metadata"]["resourceVersion"]
    r = api.put(fl_path(ns, "u2"), obj)
    assert r.status_code == 422
    assert "metadata.resourceVersion" in r.json()["message"]


def test_update_missing_is_404(api, ns):
    r = api.put(fl_path(ns, "ghost"), dict(flunder("ghost"), metadata={"name": "ghost", "resourceVersion": "5"}))
    assert r.status_code == 404


# --- patch -----------------------------------------------------------------------------
def test_merge_and_json_patch(api, ns):
    create(api, ns, "p1", labels={"a": "1", "b": "2"})
    r = api.patch(fl_path(ns, "p1"), {"metadata": {"labels": {"b": None, "c": "3"}},
                                      "spec": {"flunderReference": "x", "referenceType": "Flunder"}})
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["labels"] == {"a": "1", "c": "3"}
    assert r.json()["metadata"]["generation"] == 2
    ops = [{"op": "add", "path": "/metadata/labels/d", "value": "4"},
           {"op": "remove", "path": "/metadata/labels/a"}]
    r = api.patch(fl_path(ns, "p1"), ops, ctype="application/json-patch+json")
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["labels"] == {"c": "3", "d": "4"}
    r = api.patch(fl_path(ns, "p1"), [{"op": "test", "path": "/metadata/labels/c", "value": "nope"}],
                  ctype="application/json-patch+json")
    assert r.status_code in (409, 422) and r.json()["kind"] == "Status"
    r = api.patch(fl_path(ns, "p1"), {"metadata": {"labels": {"e": "5"}}},
                  ctype="application/strategic-merge-patch+json")
    assert r.status_code == 200 and r.json()["metadata"]["labels"]["e"] == "5"
    # a patch carrying a stale resourceVersion is a conflict
    r = api.patch(fl_path(ns, "p1"), {"metadata": {"resourceVersion": "1", "labels": {"f": "6"}}})
    assert r.status_code == 409
    # a patch that makes the object invalid is refused and nothing changes
    r = api.patch(fl_path(ns, "p1"), {"spec": {"fischerReference": "y"}})
    assert r.status_code == 422
    assert api.get(fl_path(ns, "p1")).json()["spec"] == {"flunderReference": "x", "referenceType": "Flunder"}


def test_patch_bad_content_type(api, ns):
    create(api, ns, "p2")
    r = api.patch(fl_path(ns, "p2"), {"a": 1}, ctype="text/plain")
    assert r.status_code == 415 and r.json()["reason"] == "UnsupportedMediaType"


# --- delete ----------------------------------------------------------------------------
def test_delete_returns_status_and_preconditions(api, ns):
    obj = create(api, ns, "d1")
    r = api.delete(fl_path(ns, "d1"), {"preconditions": {"uid": "wrong"}})
    assert r.status_code == 409
    assert "the UID in the precondition (wrong) does not match the UID in record" in r.json()["message"]
    r = api.delete(fl_path(ns, "d1"), {"preconditions": {"uid": obj["metadata"]["uid"],
                                                         "resourceVersion": obj["metadata"]["resourceVersion"]}})
    assert r.status_code == 200
    st = r.json()
    assert st["kind"] == "Status" and st["status"] == "Success"
    assert st["details"] == {"name": "d1", "group": "wardle.example.com", "kind": "flunders",
                             "uid": obj["metadata"]["uid"]}
    assert api.get(fl_path(ns, "d1")).status_code == 404
    assert api.delete(fl_path(ns, "d1")).status_code == 404


def test_finalizers_keep_object_until_removed(api, ns):
    body = flunder("fin")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    assert api.post(fl_path(ns), body).status_code == 201
    r = api.delete(fl_path(ns, "fin"))
    assert r.status_code == 200
    obj = r.json()
    assert obj["kind"] == "Flunder" and obj["metadata"]["deletionTimestamp"]
    got = api.get(fl_path(ns, "fin")).json()
    assert got["metadata"]["deletionTimestamp"] and got["metadata"]["finalizers"] == ["example.com/hold"]
    r = api.patch(fl_path(ns, "fin"), {"metadata": {"finalizers": None}})
    assert r.status_code == 200, r.text
    assert api.get(fl_path(ns, "fin")).status_code == 404


def test_foreground_deletion_adds_finalizer(api, ns):
    create(api, ns, "fg")
    r = api.delete(fl_path(ns, "fg"), {"propagationPolicy": "Foreground"})
    assert r.status_code == 200
    assert r.json()["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert api.patch(fl_path(ns, "fg"), {"metadata": {"finalizers": []}}).status_code == 200
    assert api.get(fl_path(ns, "fg")).status_code == 404


def test_deletecollection_with_selector(api, ns):
    for i in range(4):
        create(api, ns, f"dc{i}", labels={"grp": "a" if i < 3 else "b"})
    r = api.delete(fl_path(ns), params={"labelSelector": "grp=a"})
    assert r.status_code == 200
    assert sorted(i["metadata"]["name"] for i in r.json()["items"]) == ["dc0", "dc1", "dc2"]
    names = [i["metadata"]["name"] for i in api.get(fl_path(ns)).json()["items"]]
    assert names == ["dc3"]


# --- dry run / field validation ---------------------------------------------------------
def test_dry_run_persists_nothing(api, ns):
    r = api.post(fl_path(ns), flunder("dry"), params={"dryRun": "All"})
    assert r.status_code == 201 and r.json()["metadata"]["uid"]
    assert api.get(fl_path(ns, "dry")).status_code == 404
    r = api.post(fl_path(ns), flunder("dry", spec={"fischerReference": "x"}), params={"dryRun": "All"})
    assert r.status_code == 422  # full validation in dry run
    obj = create(api, ns, "dry2")
    r = api.patch(fl_path(ns, "dry2"), {"metadata": {"labels": {"x": "y"}}}, params={"dryRun": "All"})
    assert r.status_code == 200 and r.json()["metadata"]["labels"] == {"x": "y"}
    assert "labels" not in api.get(fl_path(ns, "dry2")).json()["metadata"]
    assert api.delete(fl_path(ns, "dry2"), params={"dryRun": "All"}).status_code == 200
    assert api.get(fl_path(ns, "dry2")).json()["metadata"]["uid"] == obj["metadata"]["uid"]
    r = api.post(fl_path(ns), flunder("dry3"), params={"dryRun": "Bogus"})
    assert r.status_code == 400


def test_field_validation(api, ns):
    body = flunder("fv")
    body["spec"]["bogus"] = 1
    r = api.post(fl_path(ns), body, params={"fieldValidation": "Strict"})
    assert r.status_code == 400
    assert 'unknown field "spec.bogus"' in r.json()["message"]
    r = api.post(fl_path(ns), body, params={"fieldValidation": "Warn"})
    assert r.status_code == 201
    assert 'unknown field \\"spec.bogus\\"' in r.headers.get("Warning", "")
    body["metadata"]["name"] = "fv2"
    r = api.post(fl_path(ns), body, params={"fieldValidation": "Ignore"})
    assert r.status_code == 201 and "Warning" not in r.headers
    raw = b'{"apiVersion":"wardle.example.com/v1beta1","kind":"Flunder","metadata":{"name":"fv3","name":"fv4"}}'
    r = api.req("POST", fl_path(ns), raw=raw, params={"fieldValidation": "Strict"})
    assert r.status_code == 400 and "duplicate field" in r.json()["message"]


# --- lists -------------------------------------------------------------------------------
def test_label_and_field_selectors(api, ns):
    create(api, ns, "s1", labels={"app": "x", "tier": "web"})
    create(api, ns, "s2", labels={"app": "y"})
    create(api, ns, "s3", spec={"fischerReference": "f", "referenceType": "Fischer"})

    def names(**params):
        r = api.get(fl_path(ns), params=params)
        assert r.status_code == 200, r.text
        return sorted(i["metadata"]["name"] for i in r.json()["items"])

    assert names(labelSelector="app=x") == ["s1"]
    assert names(labelSelector="app==y") == ["s2"]
    assert names(labelSelector="app!=x") == ["s2", "s3"]
    assert names(labelSelector="app in (x,y)") == ["s1", "s2"]
    assert names(labelSelector="app notin (x)") == ["s2", "s3"]
    assert names(labelSelector="tier") == ["s1"]
    assert names(labelSelector="!app") == ["s3"]
    assert names(fieldSelector="metadata.name=s2") == ["s2"]
    assert names(fieldSelector=f"metadata.namespace={ns},metadata.name!=s2") == ["s1", "s3"]
    # sample-apiserver selects on metadata only: kube's default field-label conversion refuses the rest
    r = api.get(fl_path(ns), params={"fieldSelector": "spec.referenceType=Fischer"})
    assert r.status_code == 400 and r.json()["message"] == (
        '"spec.referenceType" is not a known field selector: only "metadata.name", "metadata.namespace"')
    r = api.get(fl_path(ns), params={"labelSelector": "a b c"})
    assert r.status_code == 400 and r.json()["reason"] == "BadRequest"
    assert r.json()["message"] == "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
    r = api.get(fl_path(ns), params={"labelSelector": "a=b,"})  # labels.Parse's words, no prefix added
    assert r.status_code == 400 and r.json()["message"] == "found '', expected: identifier after ','"
    # all namespaces
    r = api.get(f"{FL_B}/flunders", params={"labelSelector": "app=x", "fieldSelector": f"metadata.namespace={ns}"})
    assert [i["metadata"]["name"] for i in r.json()["items"]] == ["s1"]


def test_pagination_is_a_consistent_snapshot(api, ns):
    for i in range(7):
        create(api, ns, f"pg{i}")
    r = api.get(fl_path(ns), params={"limit": 3}).json()
    assert [i["metadata"]["name"] for i in r["items"]] == ["pg0", "pg1", "pg2"]
    assert r["metadata"]["remainingItemCount"] == 4
    snap_rv = r["metadata"]["resourceVersion"]
    create(api, ns, "pg00")  # sorts inside the already-read range
    create(api, ns, "pg9")   # sorts after: must not appear
    api.delete(fl_path(ns, "pg5"))  # deleted after the snapshot: still listed
    seen = [i["metadata"]["name"] for i in r["items"]]
    cont = r["metadata"]["continue"]
    while cont:
        page = api.get(fl_path(ns), params={"limit": 3, "continue": cont}).json()
        assert page["metadata"]["resourceVersion"] == snap_rv
        seen += [i["metadata"]["name"] for i in page["items"]]
        cont = page["metadata"].get("continue")
    assert seen == [f"pg{i}" for i in range(7)]
    r = api.get(fl_path(ns), params={"limit": 3, "continue": "garbage!"})
    assert r.status_code == 400


def test_resource_version_semantics(api, ns):
    create(api, ns, "rv1")
    r0 = api.get(fl_path(ns), params={"resourceVersion": "0"}).json()
    assert [i["metadata"]["name"] for i in r0["items"]] == ["rv1"]
    rv = r0["metadata"]["resourceVersion"]
    create(api, ns, "rv2")
    exact = api.get(fl_path(ns), params={"resourceVersion": rv, "resourceVersionMatch": "Exact"}).json()
    assert [i["metadata"]["name"] for i in exact["items"]] == ["rv1"]
    assert exact["metadata"]["resourceVersion"] == rv
    newer = api.get(fl_path(ns), params={"resourceVersion": rv, "resourceVersionMatch": "NotOlderThan"}).json()
    assert [i["metadata"]["name"] for i in newer["items"]] == ["rv1", "rv2"]
    r = api.get(fl_path(ns), params={"resourceVersionMatch": "Exact"})
    assert r.status_code == 422
    r = api.get(fl_path(ns), params={"resourceVersion": "abc"})
    assert r.status_code == 400
    r = api.get(fl_path(ns), params={"resourceVersion": str(int(rv) + 10_000_000), "resourceVersionMatch": "NotOlderThan"},
                timeout=30)
    assert r.status_code == 504 and r.json()["reason"] == "Timeout"


# --- encodings -----------------------------------------------------------------------------
def test_table_yaml_and_metadata_encodings(api, ns):
    create(api, ns, "t1", spec={"flunderReference": "r", "referenceType": "Flunder"})
    t = api.get(fl_path(ns), headers={"Accept": TABLE}).json()
    assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in t["columnDefinitions"]] == ["Name", "Reference Type", "Reference", "Age"]
    assert t["rows"][0]["cells"][:3] == ["t1", "Flunder", "r"]
    assert t["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    one = api.get(fl_path(ns, "t1"), headers={"Accept": TABLE}).json()
    assert one["kind"] == "Table" and len(one["rows"]) == 1
    y = api.get(fl_path(ns, "t1"), headers={"Accept": "application/yaml"})
    assert y.headers["Content-Type"].startswith("application/yaml")
    assert yaml.safe_load(y.text)["metadata"]["name"] == "t1"
    pom = api.get(fl_path(ns), headers={
        "Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"}).json()
    assert pom["kind"] == "PartialObjectMetadataList"
    assert pom["items"][0] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                               "metadata": api.get(fl_path(ns, "t1")).json()["metadata"]}
    p1 = api.get(fl_path(ns, "t1"), headers={
        "Accept": "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"}).json()
    assert p1["kind"] == "PartialObjectMetadata"
    pretty = api.get(fl_path(ns, "t1"), params={"pretty": "true"})
    assert pretty.text.startswith("{\n")


def test_negotiation_406_and_protobuf_fallback(api, ns):
    r = api.get(fl_path(ns), headers={"Accept": "application/vnd.kubernetes.protobuf"})
    assert r.status_code == 406 and r.json()["reason"] == "NotAcceptable"
    r = api.get(fl_path(ns), headers={"Accept": "application/vnd.kubernetes.protobuf, */*"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    r = api.get(fl_path(ns), headers={"Accept": "application/vnd.kubernetes.protobuf,application/json"})
    assert r.status_code == 200 and r.json()["kind"] == "FlunderList"


# --- bad input -------------------------------------------------------------------------------
def test_bad_input_statuses(api, ns):
    r = api.req("POST", fl_path(ns), raw=b'{"apiVersion": "wardle.example.com/v1beta1", "kind": ')
    assert r.status_code == 400 and r.json()["reason"] == "BadRequest"
    r = api.req("POST", fl_path(ns), raw=b"[1,2]")
    assert r.status_code == 400
    r = api.req("POST", fl_path(ns), raw=b"<xml/>", ctype="application/xml")
    assert r.status_code == 415
    big = json.dumps(flunder("big")).encode()[:-1] + b', "pad": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    r = api.req("POST", fl_path(ns), raw=big)
    assert r.status_code == 413 and r.json()["reason"] == "RequestEntityTooLarge"
    r = api.req("PUT", fl_path(ns), body=flunder("x"))  # update on a collection
    assert r.status_code == 405 and r.json()["reason"] == "MethodNotAllowed"
    r = api.req("POST", fl_path(ns, "x"), body=flunder("x"))  # create on a named path
    assert r.status_code == 405
    r = api.post(fl_path(ns), flunder("typed", spec={"flunderReference": 5}))
    assert r.status_code == 400
    r = api.get(fl_path(ns))
    assert r.json()["items"] == []


def test_status_subresource_of_flunders_exists(api, ns):
    create(api, ns, "st1")
    r = api.get(fl_path(ns, "st1") + "/status")
    assert r.status_code == 200 and r.json()["metadata"]["name"] == "st1"
    r = api.get(fl_path(ns, "st1") + "/scale")
    assert r.status_code == 404
