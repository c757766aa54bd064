"""Content negotiation as k8s.io/apiserver's negotiation package decides it."""
import pytest

from extserver.machinery import errors as E
from extserver.machinery.negotiation import body_kind, negotiate

KUBECTL_GET = ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;"
               "g=meta.k8s.io,application/json")


@pytest.mark.parametrize("accept,media,conv", [
    (None, "json", ""),
    ("", "json", ""),
    ("*/*", "json", ""),
    ("application/json", "json", ""),
    ("application/yaml", "yaml", ""),
    (KUBECTL_GET, "json", "Table"),
    ("application/vnd.kubernetes.protobuf, */*", "json", ""),
    ("application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,"
     "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json", "json",
     "PartialObjectMetadataList"),
    ("application/json;q=0.5, application/yaml", "yaml", ""),
    ("application/json;as=Table;g=other.io;v=v1, application/json", "json", ""),
])
def test_negotiate(accept, media, conv):
    out = negotiate(accept)
    assert (out.media, out.conv) == (media, conv)


def test_not_acceptable():
    with pytest.raises(E.NotAcceptable) as e:
        negotiate("application/vnd.kubernetes.protobuf")
    assert e.value.code == 406 and e.value.reason == "NotAcceptable"
    with pytest.raises(E.NotAcceptable):
        negotiate("application/json;as=Table;g=meta.k8s.io;v=v1", allowed_conv=())
    with pytest.raises(E.NotAcceptable):
        negotiate("text/html")


def test_body_kinds():
    assert body_kind("application/json; charset=utf-8", patch=False) == "json"
    assert body_kind("application/yaml", patch=False) == "yaml"
    assert body_kind(None, patch=False) == "json"
    assert body_kind("application/merge-patch+json", patch=True) == "merge"
    assert body_kind("application/apply-patch+yaml", patch=True) == "apply"
    with pytest.raises(E.UnsupportedMediaType):
        body_kind("application/xml", patch=False)
    with pytest.raises(E.UnsupportedMediaType):
        body_kind("application/json", patch=True)
