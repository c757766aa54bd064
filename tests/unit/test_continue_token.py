"""Continue tokens: each way kube's storage.DecodeContinue refuses one, with its words, as
the etcd3 store answers it (400 "invalid continue token: ...")."""
from __future__ import annotations

import base64

import orjson
import pytest

from extserver.machinery import errors as E
from extserver.registry.store import decode_continue, encode_continue


def tok(doc) -> str:
    raw = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_round_trip():
    assert decode_continue(encode_continue(42, "ns/name\x00")) == (42, "ns/name\x00")


P = "invalid continue token: continue key is not valid: "


@pytest.mark.parametrize("token,message", [
    ("abc$", P + "illegal base64 data at input byte 3"),
    ("abcd=", P + "illegal base64 data at input byte 4"),  # RawURLEncoding: no padding
    ("abcde", P + "illegal base64 data at input byte 4"),
    (tok(b"{"), P + "unexpected end of JSON input"),
    (tok(b"x"), P + "invalid character 'x' looking for beginning of value"),
    (tok([1]), P + "json: cannot unmarshal array into Go value of type storage.continueToken"),
    (tok({"v": "meta.k8s.io/v1", "rv": "7", "start": "a"}),
     P + "json: cannot unmarshal string into Go struct field continueToken.rv of type int64"),
    (tok({"v": "meta.k8s.io/v1", "rv": 1.5, "start": "a"}),
     P + "json: cannot unmarshal number 1.5 into Go struct field continueToken.rv of type int64"),
    (tok({"v": "v1", "rv": 1, "start": "a"}), P + "server does not recognize this encoded version v1"),
    (tok({"rv": 1, "start": "a"}), P + "server does not recognize this encoded version "),
    (tok({"v": "meta.k8s.io/v1", "rv": 0, "start": "a"}),
     P + "incorrect encoded start resourceVersion (version meta.k8s.io/v1)"),
    (tok({"v": "meta.k8s.io/v1", "rv": 3, "start": ""}), P + "encoded start key empty (version meta.k8s.io/v1)"),
    (tok({"v": "meta.k8s.io/v1", "rv": 3, "start": "../other"}), P + "../other"),
    (tok({"v": "meta.k8s.io/v1", "rv": 3, "start": "a/../../b"}), P + "a/../../b"),
    (tok({"v": "meta.k8s.io/v1", "rv": 3, "start": "./a"}), P + "./a"),
    # invalid UTF-8 in a string is U+FFFD for Go's decoder, not a syntax error
    ("eyJ2IjogIqBldGEuazhzLmlvL3YxIn0", P + "server does not recognize this encoded version \ufffdeta.k8s.io/v1"),
])
def test_refusals_are_kubes_400(token, message):
    with pytest.raises(E.BadRequest) as e:
        decode_continue(token)
    assert e.value.code == 400 and str(e.value) == message
