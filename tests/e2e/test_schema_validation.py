"""Pydantic constraints are the served OpenAPI schema and are enforced with kube's words: a
kind declared with ``Field(ge=0)``, ``le``, ``min_length``/``max_length``, ``pattern``,
``Literal[...]`` or a wrong JSON type is refused as a CRD's structural schema refuses it
(422 ``Invalid``, one cause per field), against the real server over HTTPS."""
from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest

from tests.e2e.harness import API, ServerProcess, new_tmp_dir

G = "constraints.extserver.io"
PATH = f"/apis/{G}/v1/namespaces/sv/gadgets"


@pytest.fixture(scope="module")
def server():
    srv = ServerProcess(new_tmp_dir("extserver-schema-"), extra_args=[
        "--api-module", "tests.e2e.constraints_group"]).start()
    yield srv
    srv.stop()
    shutil.rmtree(srv.data_dir, ignore_errors=True)


def create(api: API, spec: dict, name: str | None = None):
    name = name or "g-" + uuid.uuid4().hex[:6]
    return api.post(PATH, {"apiVersion": f"{G}/v1", "kind": "Gadget", "metadata": {"name": name}, "spec": spec}), name


def causes(st: dict) -> list[tuple[str, str, str]]:
    return [(c["reason"], c["field"], c["message"]) for c in st["details"]["causes"]]


def test_minimum(server):
    r, name = create(API(server), {"replicas": -1})
    assert r.status_code == 422
    st = r.json()
    assert st["reason"] == "Invalid"
    assert st["message"] == (f'Gadget.{G} "{name}" is invalid: spec.replicas: Invalid value: -1: '
                             "spec.replicas in body should be greater than or equal to 0")
    assert st["details"]["kind"] == "Gadget" and st["details"]["group"] == G and st["details"]["name"] == name
    assert causes(st) == [("FieldValueInvalid", "spec.replicas",
                           "Invalid value: -1: spec.replicas in body should be greater than or equal to 0")]


def test_wrong_json_type(server):
    r, name = create(API(server), {"replicas": "string"})
    assert r.status_code == 422
    assert causes(r.json()) == [("FieldValueTypeInvalid", "spec.replicas",
                                 'Invalid value: "string": spec.replicas in body must be of type integer: "string"')]
    r, _ = create(API(server), {"replicas": 2.5})
    assert causes(r.json()) == [("FieldValueTypeInvalid", "spec.replicas",
                                 'Invalid value: "number": spec.replicas in body must be of type integer: "number"')]
    r, _ = create(API(server), {"replicas": 2.0})  # a float with an integer value is an integer (as Go's)
    assert r.status_code == 201 and r.json()["spec"]["replicas"] == 2


def test_every_constraint_at_once_one_cause_each(server):
    r, name = create(API(server), {"replicas": 11, "name": "x", "mode": "c", "tags": ["a", "b", "c"], "ratio": 0})
    assert r.status_code == 422
    assert causes(r.json()) == [
        ("FieldValueInvalid", "spec.replicas", "Invalid value: 11: spec.replicas in body should be less than or equal to 10"),
        ("FieldValueInvalid", "spec.name", 'Invalid value: "x": spec.name in body should be at least 2 chars long'),
        ("FieldValueNotSupported", "spec.mode", 'Unsupported value: "c": supported values: "a", "b"'),
        ("FieldValueTooMany", "spec.tags", "Too many: 3: must have at most 2 items"),
        ("FieldValueInvalid", "spec.ratio", "Invalid value: 0: spec.ratio in body should be greater than 0"),
    ]
    assert r.json()["message"].startswith(f'Gadget.{G} "{name}" is invalid: [spec.replicas: Invalid value: 11: ')


def test_max_length_and_pattern(server):
    r, _ = create(API(server), {"name": "ABCDEFG"})
    assert causes(r.json()) == [
        ("FieldValueTooLong", "spec.name", "Too long: may not be more than 5 bytes"),
        ("FieldValueInvalid", "spec.name", "Invalid value: \"ABCDEFG\": spec.name in body should match '^[a-z]+$'")]


def test_null_is_pruned_then_defaulted(server):
    r, _ = create(API(server), {"mode": None, "replicas": 3})
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["mode"] == "a" and r.json()["spec"]["replicas"] == 3


def test_updates_and_patches_are_validated_too(server):
    api = API(server)
    r, name = create(api, {"replicas": 1})
    assert r.status_code == 201
    p = api.patch(f"{PATH}/{name}", {"spec": {"replicas": 99}})
    assert p.status_code == 422
    assert causes(p.json()) == [("FieldValueInvalid", "spec.replicas",
                                 "Invalid value: 99: spec.replicas in body should be less than or equal to 10")]
    obj = api.get(f"{PATH}/{name}").json()
    obj["spec"]["mode"] = "z"
    u = api.put(f"{PATH}/{name}", obj)
    assert u.status_code == 422 and causes(u.json())[0][:2] == ("FieldValueNotSupported", "spec.mode")
    assert api.get(f"{PATH}/{name}").json()["spec"] == {"replicas": 1, "mode": "a", "tags": []}  # nothing written


def test_openapi_carries_the_constraints_and_descriptions(server):
    doc = API(server).get(f"/openapi/v3/apis/{G}/v1").json()
    spec = next(v for k, v in doc["components"]["schemas"].items() if k.endswith("GadgetSpec"))
    props = spec["properties"]
    assert props["replicas"]["minimum"] == 0 and props["replicas"]["maximum"] == 10
    assert props["replicas"]["description"] == "How many gadgets run."
    assert props["name"]["minLength"] == 2 and props["name"]["maxLength"] == 5
    assert props["name"]["pattern"] == "^[a-z]+$"
    assert props["mode"]["enum"] == ["a", "b"]
    assert props["tags"]["maxItems"] == 2
    assert props["ratio"]["minimum"] == 0 and props["ratio"]["exclusiveMinimum"] is True


def test_kubectl_explain_shows_the_field_description(server):
    p = subprocess.run(["kubectl", "--kubeconfig", str(server.kubeconfig), "explain", "gadgets.spec.replicas"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "How many gadgets run." in p.stdout and "<integer>" in p.stdout
