"""Kube's exact words on error paths (k8s.io/apiserver, as the Go sample-apiserver answers
the same requests), against the real server over HTTPS; each text asserted verbatim."""
from __future__ import annotations

import base64
import shutil

import pytest

from tests.e2e.harness import API, FL_B, ServerProcess, flunder, new_tmp_dir

G = "wardle.example.com"


@pytest.fixture(scope="module")
def api():
    srv = ServerProcess(new_tmp_dir("extserver-wording-")).start()
    yield API(srv)
    srv.stop()
    shutil.rmtree(srv.data_dir, ignore_errors=True)


def fl(ns: str, name: str = "") -> str:
    return f"{FL_B}/namespaces/{ns}/flunders" + (f"/{name}" if name else "")


def status(message: str, reason: str, code: int, details: dict | None = None) -> dict:
    st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
          "reason": reason}
    if details is not None:
        st["details"] = details
    st["code"] = code
    return st


def test_unknown_path_is_a_plain_404(api):
    for path in ("/apis/nope/v1/things", f"{FL_B}/namespaces/a/nosuch", "/foo"):
        r = api.get(path)
        assert r.status_code == 404
        assert r.json() == status("the server could not find the requested resource", "NotFound", 404, {})


@pytest.mark.parametrize("method,path", [
    ("PUT", "/apis/wardle.example.com/v1beta1/namespaces/w/flunders"),        # update of a collection
    ("POST", "/apis/wardle.example.com/v1beta1/namespaces/w/flunders/x"),     # create on a named path
    ("DELETE", "/apis/wardle.example.com/v1beta1/namespaces/w/flunders/x/status"),
    ("POST", "/apis/wardle.example.com/v1beta1"),                              # discovery
])
def test_a_method_without_a_route_is_go_restfuls_405(api, method, path):
    r = api.req(method, path, body=flunder("x"))
    assert r.status_code == 405
    assert r.json() == status("the server does not allow this method on the requested resource",
                              "MethodNotAllowed", 405, {})


def test_update_without_resource_version_names_the_resource_and_prints_0x0(api):
    assert api.post(fl("w"), flunder("norv")).status_code == 201
    r = api.put(fl("w", "norv"), flunder("norv", ns="w"))
    assert r.status_code == 422
    assert r.json() == status(
        'flunders.wardle.example.com "norv" is invalid: metadata.resourceVersion: Invalid value: 0x0: '
        "must be specified for an update", "Invalid", 422,
        {"name": "norv", "group": G, "kind": "flunders", "causes": [{
            "reason": "FieldValueInvalid", "message": "Invalid value: 0x0: must be specified for an update",
            "field": "metadata.resourceVersion"}]})


def test_delete_preconditions_are_rest_before_deletes(api):
    uid = api.post(fl("w"), flunder("pre")).json()["metadata"]["uid"]
    r = api.delete(fl("w", "pre"), {"preconditions": {"uid": "not-the-uid"}})
    assert r.status_code == 409
    assert r.json() == status(
        f'Operation cannot be fulfilled on Flunder.wardle.example.com "pre": the UID in the precondition '
        f"(not-the-uid) does not match the UID in record ({uid}). The object might have been deleted and "
        "then recreated", "Conflict", 409, {"name": "pre", "group": G, "kind": "Flunder"})
    rv = api.get(fl("w", "pre")).json()["metadata"]["resourceVersion"]
    r = api.delete(fl("w", "pre"), {"preconditions": {"resourceVersion": "1"}})
    assert r.json()["message"] == (
        'Operation cannot be fulfilled on Flunder.wardle.example.com "pre": the ResourceVersion in the '
        f"precondition (1) does not match the ResourceVersion in record ({rv}). The object might have been "
        "modified")


def test_invalid_continue_token(api):
    r = api.get(fl("w"), params={"continue": "abc$"})
    assert r.status_code == 400
    assert r.json() == status("invalid continue token: continue key is not valid: illegal base64 data at "
                              "input byte 3", "BadRequest", 400)
    tok = base64.urlsafe_b64encode(b'{"v":"meta.k8s.io/v1","rv":5,"start":"../x"}').rstrip(b"=").decode()
    assert api.get(fl("w"), params={"continue": tok}).json()["message"] == \
        "invalid continue token: continue key is not valid: ../x"


def test_wrong_json_type_is_gos_typed_decode_error(api):
    r = api.post(fl("w"), flunder("typed", spec={"flunderReference": 5}))
    assert r.status_code == 400
    assert r.json() == status(
        'Flunder in version "v1beta1" cannot be handled as a Flunder: json: cannot unmarshal number into Go '
        "struct field FlunderSpec.spec.flunderReference of type string", "BadRequest", 400)
    body = flunder("typed2")
    body["metadata"]["labels"] = {"a": 1}
    assert api.post(fl("w"), body).json()["message"] == (
        'Flunder in version "v1beta1" cannot be handled as a Flunder: json: cannot unmarshal number into Go '
        "struct field ObjectMeta.metadata.labels of type string")


def test_failed_json_patch_test_op_says_which_op(api):
    assert api.post(fl("w"), flunder("jp")).status_code == 201
    r = api.patch(fl("w", "jp"), [{"op": "test", "path": "/metadata/name", "value": "other"}],
                  ctype="application/json-patch+json")
    assert r.status_code == 422
    st = r.json()
    assert st["message"] == "the server rejected our request due to an error in our request"  # kube's words
    assert st["details"] == {"causes": [{"message": "testing value /metadata/name failed: test failed"}]}


def test_protobuf_only_accept_is_406_saying_why(api):
    r = api.get(fl("w"), headers={"Accept": "application/vnd.kubernetes.protobuf"})
    assert r.status_code == 406
    assert r.json() == status(
        "only the following media types are accepted: application/json, application/yaml "
        "(application/vnd.kubernetes.protobuf is not served by this server; offer application/json as well)",
        "NotAcceptable", 406)
    r = api.get(fl("w"), headers={"Accept": "text/html"})
    assert r.json()["message"] == "only the following media types are accepted: application/json, application/yaml"
    r = api.get(fl("w"), headers={"Accept": "application/vnd.kubernetes.protobuf, */*"})  # what kube-controller-manager sends
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")


SCHEME = "k8s.io/sample-apiserver/pkg/apiserver/apiserver.go:36"


@pytest.mark.parametrize("path,api_version,kind,message", [
    (FL_B, f"{G}/v1beta1", "Fischer", 'Fischer in version "v1beta1" cannot be handled as a Flunder: no kind '
     f'"Fischer" is registered for version "{G}/v1beta1" in scheme "{SCHEME}"'),
    ("/apis/wardle.example.com/v1alpha1", f"{G}/v1alpha1", "Fischer", 'Fischer in version "v1alpha1" cannot '
     "be handled as a Flunder: converting (v1alpha1.Fischer) to (wardle.Flunder): unknown conversion"),
    (FL_B, "apps/v1", "Deployment", 'Deployment in version "v1" cannot be handled as a Flunder: no kind '
     f'"Deployment" is registered for version "apps/v1" in scheme "{SCHEME}"'),
])
def test_a_body_of_another_kind(api, path, api_version, kind, message):
    r = api.post(f"{path}/namespaces/w/flunders", {"apiVersion": api_version, "kind": kind,
                                                   "metadata": {"name": "k"}})
    assert r.status_code == 400
    assert r.json() == status(message, "BadRequest", 400)
