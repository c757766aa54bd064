"""Server-side apply (application/apply-patch+yaml): create, merge, field ownership,
conflicts and force, removal of fields a manager stops applying — on both backends."""
from __future__ import annotations

import yaml

APPLY = "application/apply-patch+yaml"


def path(ns: str, name: str) -> str:
    return f"/apis/wardle.example.com/v1beta1/namespaces/{ns}/flunders/{name}"


def cfg(name: str, labels: dict | None = None, **spec) -> bytes:
    d = {"apiVersion": "wardle.example.com/v1beta1", "kind": "Flunder", "metadata": {"name": name}}
    if labels:
        d["metadata"]["labels"] = labels
    if spec:
        d["spec"] = spec
    return yaml.safe_dump(d).encode()


def apply(api, ns, name, body, manager, **params):
    return api.req("PATCH", path(ns, name), raw=body, ctype=APPLY,
                   params={"fieldManager": manager, **params})


def test_apply_creates_then_merges_and_tracks_ownership(api, ns):
    r = apply(api, ns, "ssa", cfg("ssa", {"a": "1"}, flunderReference="x", referenceType="Flunder"), "alice")
    assert r.status_code == 201, r.text
    obj = r.json()
    mf = obj["metadata"]["managedFields"]
    assert [(e["manager"], e["operation"], e["apiVersion"]) for e in mf] == [
        ("alice", "Apply", "wardle.example.com/v1beta1")]
    assert mf[0]["fieldsV1"] == {"f:metadata": {"f:labels": {"f:a": {}}},
                                 "f:spec": {"f:flunderReference": {}, "f:referenceType": {}}}
    # a second manager adds a label: both are kept, each owns its own
    r = apply(api, ns, "ssa", cfg("ssa", {"b": "2"}), "bob")
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["labels"] == {"a": "1", "b": "2"}
    assert r.json()["spec"] == {"flunderReference": "x", "referenceType": "Flunder"}
    # alice stops applying her label: it is removed (nobody else owns it)
    r = apply(api, ns, "ssa", cfg("ssa", flunderReference="x", referenceType="Flunder"), "alice")
    assert r.status_code == 200
    assert r.json()["metadata"]["labels"] == {"b": "2"}


def test_apply_conflicts_and_force(api, ns):
    assert apply(api, ns, "c", cfg("c", flunderReference="x", referenceType="Flunder"), "alice").status_code == 201
    r = apply(api, ns, "c", cfg("c", flunderReference="y", referenceType="Flunder"), "bob")
    assert r.status_code == 409
    st = r.json()
    assert st["reason"] == "Conflict"
    assert st["message"] == ('Apply failed with 1 conflict: conflict with "alice" using '
                             'wardle.example.com/v1beta1: .spec.flunderReference')
    assert st["details"]["causes"][0]["reason"] == "FieldManagerConflict"
    assert api.get(path(ns, "c")).json()["spec"]["flunderReference"] == "x"
    # the same value is no conflict (shared ownership)
    assert apply(api, ns, "c", cfg("c", referenceType="Flunder"), "bob").status_code == 200
    r = apply(api, ns, "c", cfg("c", flunderReference="y", referenceType="Flunder"), "bob", force="true")
    assert r.status_code == 200 and r.json()["spec"]["flunderReference"] == "y"
    owners = {e["manager"]: e["fieldsV1"] for e in r.json()["metadata"]["managedFields"]}
    assert "f:flunderReference" in owners["bob"]["f:spec"]
    assert "f:flunderReference" not in owners["alice"].get("f:spec", {})


def test_apply_validation_and_required_manager(api, ns):
    r = api.req("PATCH", path(ns, "v"), raw=cfg("v"), ctype=APPLY)
    assert r.status_code == 422 and "fieldManager" in r.json()["message"]
    r = apply(api, ns, "v", cfg("v", flunderReference="a", fischerReference="b", referenceType="Flunder"), "m")
    assert r.status_code == 422
    assert api.get(path(ns, "v")).status_code == 404
    r = apply(api, ns, "v", cfg("v"), "m", dryRun="All")
    assert r.status_code == 201 and api.get(path(ns, "v")).status_code == 404
