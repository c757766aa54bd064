"""Issue 10, bad input: every body or parameter that made the server answer 500 (or hang)
gets kube's 4xx, on the real server process (both storage backends, local mode)."""
from __future__ import annotations

import gzip
import json
import time

import pytest
import yaml

from tests.e2e.harness import FL_A, FL_B, flunder


TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def path(ns: str, name: str = "", base: str = FL_B) -> str:
    p = f"{base}/namespaces/{ns}/flunders"
    return f"{p}/{name}" if name else p


def bad_request(r, *fragments: str) -> dict:
    assert r.status_code == 400, (r.status_code, r.text[:500])
    st = r.json()
    assert st["kind"] == "Status" and st["reason"] == "BadRequest" and st["code"] == 400
    for f in fragments:
        assert f in st["message"], st["message"]
    return st


def rss_kb(server) -> int:
    for line in open(f"/proc/{server.proc.pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def with_fields(name: str, fields_v1) -> dict:
    body = flunder(name)
    body["metadata"]["managedFields"] = [{"manager": "m", "operation": "Update",
                                          "apiVersion": "wardle.example.com/v1beta1", "fieldsType": "FieldsV1",
                                          "fieldsV1": fields_v1}]
    return body


def nested(depth: int) -> dict:
    """An object nested ``depth`` levels (the innermost one empty)."""
    d: dict = {}
    for _ in range(depth - 1):
        d = {"f:a": d}
    return d


def deep_json(doc, depth: int) -> bytes:
    """``doc`` as JSON with the string "DEEP" replaced by an object nested ``depth`` levels
    (written as text: the client's own encoder recurses)."""
    return json.dumps(doc).replace('"DEEP"', '{"f:a":' * (depth - 1) + "{}" + "}" * (depth - 1)).encode()


# --- YAML bombs -------------------------------------------------------------------------
LAUGHS = "".join(
    f"      {c}: &{c} [{', '.join([f'*{p}'] * 9 if p else ['lol'] * 9)}]\n"
    for p, c in zip([""] + list("abcdefgh"), "abcdefghi"))

BOMB = ("apiVersion: wardle.example.com/v1beta1\nkind: Flunder\nmetadata:\n  name: bomb\n"
        "  managedFields:\n  - manager: m\n    operation: Update\n    fieldsType: FieldsV1\n"
        "    fieldsV1:\n" + LAUGHS)


def test_yaml_alias_bomb_is_refused_without_memory_growth(api, server, ns):
    assert len(BOMB) < 700  # the 632-byte body, give or take the names
    before = rss_kb(server)
    r = api.post(path(ns), raw=BOMB.encode(), ctype="application/yaml", timeout=60)
    bad_request(r, "yaml: document contains excessive aliasing")
    assert api.get("/healthz").text == "ok"
    assert rss_kb(server) - before < 200 * 1024
    # the same document as an apply patch
    r = api.patch(path(ns, "bomb") + "?fieldManager=m", raw=BOMB.encode(), ctype="application/apply-patch+yaml",
                  timeout=60)
    bad_request(r, "error decoding YAML: ", "excessive aliasing")
    assert rss_kb(server) - before < 200 * 1024


def test_yaml_aliases_within_bounds_are_expanded(api, ns):
    doc = ("apiVersion: wardle.example.com/v1beta1\nkind: Flunder\nmetadata:\n  name: al\n"
           "  labels: &l {a: b}\n  annotations: *l\n")
    r = api.post(path(ns), raw=doc.encode(), ctype="application/yaml")
    assert r.status_code == 201, r.text
    md = r.json()["metadata"]
    assert md["labels"] == md["annotations"] == {"a": "b"}


@pytest.mark.parametrize("depth", [900, 3000])
def test_yaml_nested_too_deep(api, ns, depth):
    doc = "apiVersion: wardle.example.com/v1beta1\nkind: Flunder\nmetadata:\n  name: deep\nspec: " + \
        "[" * depth + "]" * depth + "\n"
    r = api.post(path(ns), raw=doc.encode(), ctype="application/yaml")
    bad_request(r, "yaml: exceeded max depth of 200")


def test_yaml_lone_surrogate(api, ns):
    doc = 'apiVersion: wardle.example.com/v1beta1\nkind: Flunder\nmetadata:\n  name: s\n  labels: {a: "\\ud800"}\n'
    r = api.post(path(ns), raw=doc.encode(), ctype="application/yaml")
    bad_request(r, "found invalid Unicode character escape code")


# --- JSON depth -------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [990, 1024])
def test_json_nested_too_deep_create(api, ns, depth):
    r = api.post(path(ns), raw=deep_json(with_fields("deep", "DEEP"), depth))
    bad_request(r, "couldn't get version/kind; json parse error: ", "exceeded max depth")


def test_json_nested_within_bound_is_stored_and_served(api, ns):
    body = with_fields("ok", nested(190))
    r = api.post(path(ns), body)
    assert r.status_code == 201, r.text[:300]
    assert api.get(path(ns, "ok")).json()["metadata"]["managedFields"][0]["fieldsV1"] == nested(190)
    assert api.get(path(ns, "ok"), headers={"Accept": TABLE}).status_code == 200
    assert api.get(path(ns), headers={"Accept": "application/yaml"}).status_code == 200


@pytest.mark.parametrize("ctype", ["application/merge-patch+json", "application/strategic-merge-patch+json",
                                   "application/json-patch+json"])
def test_json_nested_too_deep_patch(api, ns, ctype):
    assert api.post(path(ns), flunder("p")).status_code == 201
    deep = {"metadata": {"managedFields": [{"manager": "m", "operation": "Update", "fieldsType": "FieldsV1",
                                            "fieldsV1": "DEEP"}]}}
    body = [{"op": "add", "path": "/metadata/annotations", "value": "DEEP"}] \
        if ctype == "application/json-patch+json" else deep
    for fv in ("Strict", "Ignore"):
        r = api.patch(path(ns, "p") + f"?fieldValidation={fv}", raw=deep_json(body, 1000), ctype=ctype)
        if ctype == "application/merge-patch+json" and fv == "Ignore":
            bad_request(r, "Invalid JSON Patch")  # evanphx's answer to any Go SyntaxError
        else:
            bad_request(r, "exceeded max depth")


def test_update_too_deep(api, ns):
    obj = api.post(path(ns), flunder("u")).json()
    obj["metadata"]["managedFields"] = with_fields("u", "DEEP")["metadata"]["managedFields"]
    bad_request(api.put(path(ns, "u"), raw=deep_json(obj, 1000)), "exceeded max depth")


# --- numbers, keys, encodings -------------------------------------------------------------
def test_integer_beyond_64_bits_in_fields_v1(api, ns):
    big = 2 ** 70
    doc = ("apiVersion: wardle.example.com/v1beta1\nkind: Flunder\nmetadata:\n  name: big\n"
           "  managedFields:\n  - manager: m\n    operation: Update\n    fieldsType: FieldsV1\n"
           f"    fieldsV1: {{f:x: {big}}}\n")
    r = api.post(path(ns), raw=doc.encode(), ctype="application/yaml")
    assert r.status_code in (201, 400), r.text  # kube reads it as a float; never a 500
    assert api.post(path(ns), flunder("big2")).status_code == 201
    raw = b'{"metadata":{"annotations":{"a":"b"},"managedFields":[{"manager":"m","operation":"Update",' \
          b'"fieldsType":"FieldsV1","fieldsV1":{"f:x":%d}}]}}' % big
    r = api.patch(path(ns, "big2") + "?fieldValidation=Strict", raw=raw, ctype="application/merge-patch+json")
    assert r.status_code in (200, 400, 422), r.text


def test_apply_with_non_string_key(api, ns):
    doc = "apiVersion: wardle.example.com/v1beta1\nkind: Flunder\nmetadata:\n  name: k\n  labels: {1: c}\n"
    r = api.patch(path(ns, "k") + "?fieldManager=m", raw=doc.encode(), ctype="application/apply-patch+yaml")
    assert r.status_code == 201, r.text  # sigs.k8s.io/yaml turns the key 1 into "1"
    assert r.json()["metadata"]["labels"] == {"1": "c"}
    r = api.patch(path(ns, "k") + "?fieldManager=m", raw=doc.replace("1: c", "[a]: c").encode(),
                  ctype="application/apply-patch+yaml")
    bad_request(r, "error decoding YAML: ")


def test_content_encoding_is_not_applied_to_request_bodies(api, ns):
    """kube (Go's net/http) never decodes a request's Content-Encoding: the bytes are the body."""
    r = api.post(path(ns), flunder("ce"), headers={"Content-Encoding": "gzip"})
    assert r.status_code == 201, r.text
    r = api.post(path(ns), raw=gzip.compress(json.dumps(flunder("ce2")).encode()),
                 headers={"Content-Encoding": "gzip"})
    bad_request(r, "couldn't get version/kind; json parse error: invalid character '\\x1f' looking for "
                   "beginning of value")


# --- smaller deviations --------------------------------------------------------------------
def test_body_of_another_version(api, ns):
    r = api.post(path(ns, base=FL_A), flunder("v", version="v1beta1"))
    bad_request(r, "the API version in the data (wardle.example.com/v1beta1) does not match the expected "
                   "API version (wardle.example.com/v1alpha1)")


@pytest.mark.parametrize("ctype,body", [
    ("application/merge-patch+json", {"metadata": {"namespace": "elsewhere"}}),
    ("application/json-patch+json", [{"op": "replace", "path": "/metadata/namespace", "value": "elsewhere"}]),
])
def test_patch_changing_namespace(api, ns, ctype, body):
    assert api.post(path(ns), flunder("n")).status_code == 201
    r = api.patch(path(ns, "n"), body, ctype=ctype)
    bad_request(r, f"the namespace of the object (elsewhere) does not match the namespace on the URL ({ns})")
    assert api.get(path(ns, "n")).json()["metadata"]["namespace"] == ns


@pytest.mark.parametrize("rv,problem", [(" 1", "invalid syntax"), ("\uff11", "invalid syntax"),
                                        ("+1", "invalid syntax"), (str(2 ** 64), "value out of range")])
def test_invalid_resource_versions(api, ns, rv, problem):
    assert api.post(path(ns), flunder("rv")).status_code == 201
    q = json.dumps(rv, ensure_ascii=False)
    msg = f"invalid resource version: resourceVersion: Invalid value: {q}: strconv.ParseUint: parsing {q}: {problem}"
    for p in (path(ns, "rv"), path(ns)):
        bad_request(api.get(p, params={"resourceVersion": rv}), msg)
    t0 = time.monotonic()
    r = api.get(path(ns), params={"watch": "true", "resourceVersion": rv}, stream=True)
    try:
        bad_request(r, msg)
    finally:
        r.close()
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize("param,value", [("timeoutSeconds", "abc"), ("limit", "1x"), ("timeoutSeconds", " 5")])
def test_malformed_integer_parameters(api, ns, param, value):
    q = json.dumps(value)
    for extra in ({}, {"watch": "true"}):
        r = api.get(path(ns), params={param: value, **extra}, stream=True)
        try:
            bad_request(r, f"strconv.ParseInt: parsing {q}: invalid syntax")
        finally:
            r.close()


def test_yaml_body_values_as_go_reads_them(api, ns):
    """Timestamps stay strings and the object round-trips through a YAML list."""
    doc = ("apiVersion: wardle.example.com/v1beta1\nkind: Flunder\nmetadata:\n  name: ts\n"
           "  annotations: {when: 2001-12-14}\n")
    r = api.post(path(ns), raw=doc.encode(), ctype="application/yaml")
    assert r.status_code == 201, r.text
    assert r.json()["metadata"]["annotations"] == {"when": "2001-12-14"}
    listed = yaml.safe_load(api.get(path(ns), headers={"Accept": "application/yaml"}).text)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["ts"]


def test_json_patch_result_deeper_than_an_object_may_be(api, ns):
    """A JSON patch can place a value below an existing deep path: the result is bounded too."""
    body = with_fields("jp", nested(30))
    assert api.post(path(ns), body).status_code == 201
    at = "/metadata/managedFields/0/fieldsV1" + "/f:a" * 28 + "/x"
    raw = deep_json([{"op": "add", "path": at, "value": "DEEP"}], 190)
    r = api.patch(path(ns, "jp"), raw=raw, ctype="application/json-patch+json")
    assert r.status_code == 422, r.text[:300]
    assert r.json()["reason"] == "Invalid" and "exceeded max depth" in r.json()["message"]
    assert api.get(path(ns, "jp")).json()["metadata"]["managedFields"][0]["fieldsV1"] == nested(30)


def test_boolean_parameters_read_as_kubes_parameter_codec(api, ns):
    """PatchOptions/ListOptions booleans: only "0" and "false" are false (so ``force=yes``
    forces); ``pretty`` is Go's ParseBool (``t`` is true)."""
    def apply(manager, ref, **params):
        doc = f"apiVersion: wardle.example.com/v1beta1\nkind: Flunder\nmetadata:\n  name: b\nspec:\n  " \
              f"flunderReference: {ref}\n  referenceType: Flunder\n"
        return api.patch(path(ns, "b"), raw=doc.encode(), ctype="application/apply-patch+yaml",
                         params={"fieldManager": manager, **params})

    assert apply("alice", "x").status_code == 201
    assert apply("bob", "y").status_code == 409
    assert apply("bob", "y", force="False").status_code == 409
    r = apply("bob", "y", force="yes")
    assert r.status_code == 200, r.text
    assert r.json()["spec"]["flunderReference"] == "y"
    assert api.get(path(ns, "b"), params={"pretty": "t"}).text.startswith('{\n  "')


def test_delete_options_body_too_deep(api, ns):
    assert api.post(path(ns), flunder("d")).status_code == 201
    raw = deep_json({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": "DEEP"}, 1000)
    bad_request(api.delete(path(ns, "d"), raw=raw), "exceeded max depth")
    assert api.get(path(ns, "d")).status_code == 200


def test_json_lone_surrogate_reads_as_replacement_character(api, ns):
    """Go's JSON decoder turns an unpaired surrogate escape into U+FFFD."""
    raw = json.dumps(flunder("sg")).replace('"name": "sg"', '"name": "sg", "annotations": {"a": "x\\ud800"}').encode()
    r = api.post(path(ns), raw=raw)
    assert r.status_code == 201, r.text
    assert r.json()["metadata"]["annotations"] == {"a": "x\ufffd"}


@pytest.mark.parametrize("rv", [" 1", "\uff11"])
def test_update_with_malformed_resource_version(api, ns, rv):
    obj = api.post(path(ns), flunder("urv")).json()
    obj["metadata"]["resourceVersion"] = rv
    q = json.dumps(rv, ensure_ascii=False)
    bad_request(api.put(path(ns, "urv"), obj), f"invalid resource version: resourceVersion: Invalid value: {q}")


@pytest.mark.parametrize("body,message", [
    ({"preconditions": 1}, "json: cannot unmarshal number into Go struct field DeleteOptions.preconditions of type "
                           "v1.Preconditions"),
    ({"preconditions": {"uid": ["x"]}}, "json: cannot unmarshal array into Go struct field "
                                        "Preconditions.preconditions.uid of type types.UID"),
    ({"gracePeriodSeconds": "5"}, "json: cannot unmarshal string into Go struct field DeleteOptions.gracePeriodSeconds "
                                  "of type int64"),
    ({"gracePeriodSeconds": 1.5}, "json: cannot unmarshal number 1.5 into Go struct field "
                                  "DeleteOptions.gracePeriodSeconds of type int64"),
    ({"dryRun": "All"}, "json: cannot unmarshal string into Go struct field DeleteOptions.dryRun of type []string"),
])
def test_delete_options_of_the_wrong_types(api, ns, body, message):
    assert api.post(path(ns), flunder("dt")).status_code == 201
    bad_request(api.delete(path(ns, "dt"), body), message)
    assert api.get(path(ns, "dt")).status_code == 200


def test_apply_with_metadata_not_a_map(api, ns):
    doc = "apiVersion: wardle.example.com/v1beta1\nkind: Flunder\nmetadata: 1\n"
    r = api.patch(path(ns, "am") + "?fieldManager=m", raw=doc.encode(), ctype="application/apply-patch+yaml")
    bad_request(r, "failed to create typed patch object", ".metadata: expected map")
