"""Request info: kube verbs and attributes from the URL, parsed once."""
import pytest

from extserver.filters.requestinfo import parse_request_info

G = "/apis/wardle.example.com/v1beta1"


@pytest.mark.parametrize("method,path,query,verb,ns,res,name,sub", [
    ("GET", f"{G}/namespaces/n/flunders", {}, "list", "n", "flunders", "", ""),
    ("GET", f"{G}/namespaces/n/flunders", {"watch": "true"}, "watch", "n", "flunders", "", ""),
    ("GET", f"{G}/namespaces/n/flunders/x", {}, "get", "n", "flunders", "x", ""),
    ("GET", f"{G}/namespaces/n/flunders/x", {"watch": "1"}, "watch", "n", "flunders", "x", ""),
    ("GET", f"{G}/watch/namespaces/n/flunders", {}, "watch", "n", "flunders", "", ""),
    ("GET", f"{G}/flunders", {}, "list", "", "flunders", "", ""),
    ("POST", f"{G}/namespaces/n/flunders", {}, "create", "n", "flunders", "", ""),
    ("PUT", f"{G}/namespaces/n/flunders/x/status", {}, "update", "n", "flunders", "x", "status"),
    ("PATCH", f"{G}/namespaces/n/flunders/x", {}, "patch", "n", "flunders", "x", ""),
    ("DELETE", f"{G}/namespaces/n/flunders/x", {}, "delete", "n", "flunders", "x", ""),
    ("DELETE", f"{G}/namespaces/n/flunders", {}, "deletecollection", "n", "flunders", "", ""),
    ("GET", "/apis/wardle.example.com/v1alpha1/fischers/f", {}, "get", "", "fischers", "f", ""),
    ("GET", f"{G}/namespaces/n", {}, "get", "", "namespaces", "n", ""),
])
def test_resource_requests(method, path, query, verb, ns, res, name, sub):
    info = parse_request_info(method, path, query)
    assert info.is_resource_request
    assert (info.verb, info.namespace, info.resource, info.name, info.subresource) == (verb, ns, res, name, sub)
    assert info.api_group == "wardle.example.com"


@pytest.mark.parametrize("path", ["/apis", "/apis/wardle.example.com", G, "/healthz", "/openapi/v2", "/"])
def test_non_resource_requests(path):
    info = parse_request_info("GET", path, {})
    assert not info.is_resource_request and info.verb == "get"


def test_escaped_segments_are_decoded_once():
    info = parse_request_info("GET", f"{G}/namespaces/n/flunders/a%2Fb", {})
    assert info.name == "a/b"
