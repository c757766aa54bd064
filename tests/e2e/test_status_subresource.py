"""A user group (tests/e2e/widgets.py, loaded with --api-module) with a status subresource:
the status strategy, generation, warnings and declared field selectors, on both backends."""
from __future__ import annotations

WD = "/apis/demo.extserver.io/v1"


def wpath(ns: str, name: str = "", sub: str = "") -> str:
    p = f"{WD}/namespaces/{ns}/widgets"
    if name:
        p += f"/{name}"
    if sub:
        p += f"/{sub}"
    return p


def widget(name: str, replicas: int = 1, color: str | None = "red", status: dict | None = None) -> dict:
    spec = {"replicas": replicas}
    if color:
        spec["color"] = color
    d = {"apiVersion": "demo.extserver.io/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}
    if status is not None:
        d["status"] = status
    return d


def test_discovery_lists_status_subresource(api):
    res = {r["name"]: r for r in api.get(WD).json()["resources"]}
    assert res["widgets"]["shortNames"] == ["wd"]
    assert res["widgets/status"]["verbs"] == ["get", "patch", "update"]


def test_status_is_written_only_through_the_subresource(api, ns):
    r = api.post(wpath(ns), widget("w1", status={"readyReplicas": 5, "phase": "Up"}))
    assert r.status_code == 201, r.text
    obj = r.json()
    assert obj["status"] == {}  # status is dropped on create
    # a main-resource update cannot change status
    obj["status"] = {"phase": "Hacked"}
    obj["spec"]["replicas"] = 3
    r = api.put(wpath(ns, "w1"), obj)
    assert r.status_code == 200
    upd = r.json()
    assert upd["status"] == {} and upd["spec"]["replicas"] == 3 and upd["metadata"]["generation"] == 2
    # a status update cannot change spec, and does not bump generation
    upd["status"] = {"readyReplicas": 3, "phase": "Up"}
    upd["spec"]["replicas"] = 99
    r = api.put(wpath(ns, "w1", "status"), upd)
    assert r.status_code == 200, r.text
    st = r.json()
    assert st["status"] == {"readyReplicas": 3, "phase": "Up"}
    assert st["spec"]["replicas"] == 3 and st["metadata"]["generation"] == 2
    # status patch, and status validation
    r = api.patch(wpath(ns, "w1", "status"), {"status": {"phase": "Down"}})
    assert r.status_code == 200 and r.json()["status"] == {"readyReplicas": 3, "phase": "Down"}
    r = api.patch(wpath(ns, "w1", "status"), {"status": {"readyReplicas": -1}})
    assert r.status_code == 422
    assert r.json()["details"]["causes"][0]["field"] == "status.readyReplicas"
    assert api.get(wpath(ns, "w1")).json()["status"]["readyReplicas"] == 3
    r = api.delete(wpath(ns, "w1", "status"))
    assert r.status_code == 405


def test_strategy_validation_warnings_and_field_selector(api, ns):
    r = api.post(wpath(ns), widget("neg", replicas=-1))
    assert r.status_code == 422
    assert r.json()["message"] == ('Widget.demo.extserver.io "neg" is invalid: spec.replicas: Invalid value: -1: '
                                   'must be greater than or equal to 0')
    r = api.post(wpath(ns), widget("plain", color=None))
    assert r.status_code == 201
    assert r.headers.get("Warning") == '299 - "spec.color is not set"'
    assert api.post(wpath(ns), widget("blue", color="blue")).status_code == 201
    r = api.get(wpath(ns), params={"fieldSelector": "spec.color=blue"})
    assert [i["metadata"]["name"] for i in r.json()["items"]] == ["blue"]
    r = api.get(wpath(ns), params={"fieldSelector": "spec.size=1"})
    assert r.status_code == 400 and r.json()["message"] == "field label not supported: spec.size"


def test_table_columns_from_strategy(api, ns):
    assert api.post(wpath(ns), widget("tbl", replicas=2)).status_code == 201
    t = api.get(wpath(ns), headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}).json()
    assert [c["name"] for c in t["columnDefinitions"]] == ["Name", "Replicas", "Ready", "Color", "Age"]
    assert [c["priority"] for c in t["columnDefinitions"]] == [0, 0, 0, 1, 0]
    assert t["rows"][0]["cells"][:4] == ["tbl", 2, 0, "red"]
