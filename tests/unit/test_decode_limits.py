"""The decode-edge bounds (machinery.limits, jsonscan, decoding.parse_body) and the claim
they rest on: every walk that runs after decoding handles the deepest document the bounds
let through, even with a server's worth of stack already in use."""
from __future__ import annotations

import json
import sys

import orjson
import pytest
import yaml
from pydantic import BaseModel

from extserver.machinery import errors as E
from extserver.machinery import jsonscan, limits, yamlscan
from extserver.machinery.decoding import parse_body, unknown_fields
from extserver.machinery.patch import (apply_json_patch, apply_merge_patch, decode_json_patch, decode_merge_patch,
                                       decode_strategic_merge_patch, strategic_merge_patch)
from extserver.registry import fieldmanager
from extserver.registry.store import parse_resource_version


class _Model(BaseModel):
    spec: dict = {}


def deep_text(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


def deep_obj(depth: int) -> dict:
    d: dict = {}
    for _ in range(depth - 1):
        d = {"f:a": d}
    return d


# --- JSON ------------------------------------------------------------------------------
def test_json_depth_bound_is_exact():
    jsonscan.loads(deep_text(limits.MAX_DEPTH).encode())
    with pytest.raises(limits.LimitError, match=r"^invalid character '\[' exceeded max depth$"):
        jsonscan.loads(deep_text(limits.MAX_DEPTH + 1).encode())


def test_json_deeper_than_orjson_reads_is_refused_by_the_scanner():
    # orjson stops at 1,024 levels; the Go scanner port then answers, with the same bound
    with pytest.raises(ValueError, match="exceeded max depth"):
        jsonscan.loads(deep_text(5000, '{"a":', "}").encode())
    assert jsonscan.go_json_syntax_error(deep_text(limits.MAX_DEPTH).encode()) is None


def test_json_lone_surrogates_and_big_integers_read_as_go_does():
    doc = jsonscan.loads(b'{"a":"\\ud800x","\\udc00":1}')
    assert doc == {"a": "\ufffdx", "\ufffd": 1}
    strict, dups = jsonscan.loads_strict(b'{"n":%d,"m":18446744073709551615,"s":"\\ud800"}' % (2 ** 70))
    assert strict == {"n": float(2 ** 70), "m": 2 ** 64 - 1, "s": "\ufffd"} and dups == []
    orjson.dumps(strict)  # encodable


@pytest.mark.parametrize("decode", [decode_json_patch, decode_merge_patch, decode_strategic_merge_patch])
@pytest.mark.parametrize("strict", [True, False])
def test_patch_decoders_apply_the_bound(decode, strict):
    body = ('[{"op":"add","path":"/a","value":' + deep_text(1000) + "}]") if decode is decode_json_patch \
        else '{"a":' + deep_text(1000) + "}"
    with pytest.raises(E.StatusError) as ei:
        decode(body.encode(), strict=strict)
    assert ei.value.code == 400
    if not (decode is decode_merge_patch and not strict):
        assert "exceeded max depth" in ei.value.status()["message"]


def test_json_patch_cannot_nest_past_the_encoder():
    doc = {"a": deep_obj(150)}
    ops = [{"op": "copy", "from": "/a", "path": "/a" + "/f:a" * 148 + "/b"},
           {"op": "copy", "from": "/a", "path": "/a" + "/f:a" * 148 + "/c"}]
    with pytest.raises(E.StatusError) as ei:
        apply_json_patch(doc, ops * 2)
    assert ei.value.code == 422


# --- YAML ------------------------------------------------------------------------------
def laughs(levels: int, fanout: int) -> bytes:
    lines = [f"a0: &a0 [{', '.join(['lol'] * fanout)}]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * fanout)}]")
    return "\n".join(lines).encode()


def test_yaml_billion_laughs_is_refused():
    with pytest.raises(limits.LimitError, match="^yaml: document contains excessive aliasing$"):
        yamlscan.load_yaml(laughs(9, 9))


def test_yaml_low_ratio_exponential_aliasing_is_capped():
    """Two aliases and 20 scalars a level keep yaml.v2's ratio below 10%; the expansion cap
    still stops it."""
    lines = ["a0: &a0 [" + ",".join(["s"] * 20) + "]"]
    for i in range(1, 40):
        lines.append(f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, " + ",".join(["s"] * 20) + "]")
    with pytest.raises(limits.LimitError, match="excessive aliasing"):
        yamlscan.load_yaml("\n".join(lines).encode())


def test_yaml_modest_aliasing_is_expanded_into_independent_copies():
    doc = yamlscan.load_yaml(laughs(3, 9))
    assert len(doc["a2"]) == 9 and doc["a2"][0] == doc["a1"] and doc["a1"][0] == doc["a0"] == ["lol"] * 9
    assert doc["a2"][0] is not doc["a2"][1]  # no shared containers reach the patch code


def test_yaml_depth_bound_counts_alias_expansion():
    yamlscan.load_yaml(deep_text(limits.MAX_DEPTH).encode())
    for text in (deep_text(limits.MAX_DEPTH + 1), "- " * 3000 + "x",
                 "x: &x [[1]]\ny: " + "[" * (limits.MAX_DEPTH - 2) + "*x" + "]" * (limits.MAX_DEPTH - 2)):
        with pytest.raises(limits.LimitError, match=f"^yaml: exceeded max depth of {limits.MAX_DEPTH}$"):
            yamlscan.load_yaml(text.encode())


def test_yaml_values_convert_as_sigs_k8s_io_yaml():
    doc = yamlscan.load_yaml(b"a: {1: x, 2.5: y, 3.0: z, false: w}\nt: 2001-12-14\nn: %d\n"
                           b"b: !!binary aGk=\ns: !!set {p, q}\n" % 2 ** 70)
    assert doc == {"a": {"1": "x", "2.5": "y", "3": "z", "false": "w"}, "t": "2001-12-14", "n": float(2 ** 70),
                   "b": "hi", "s": {"p": None, "q": None}}
    with pytest.raises(limits.LimitError, match="invalid map key"):
        yamlscan.load_yaml(b"? ~\n: 1\n")
    with pytest.raises(limits.LimitError, match=r"invalid map key: \['a', 'b'\]"):
        yamlscan.load_yaml(b"? [a, b]\n: 1\n")


def test_yaml_invalid_escape_is_libyamls_error():
    with pytest.raises(yaml.YAMLError) as ei:
        yamlscan.load_yaml(b'a: "\\ud800"\n')
    assert yamlscan.yaml_error_text(ei.value) == "yaml: line 1: found invalid Unicode character escape code"


# --- the decode edge's messages -----------------------------------------------------------
def test_parse_body_messages():
    with pytest.raises(E.StatusError) as ei:
        parse_body(b'{"kind": 1', "json", "Flunder")
    assert ei.value.status()["message"] == ("the object provided is unrecognized (must be of type Flunder): "
                                            "couldn't get version/kind; json parse error: unexpected end of "
                                            'JSON input ({"kind": 1)')
    with pytest.raises(E.StatusError) as ei:
        parse_body(deep_text(300).encode(), "json", "Flunder")
    assert ei.value.status()["message"].startswith(
        "the object provided is unrecognized (must be of type Flunder): couldn't get version/kind; json parse "
        "error: invalid character '[' exceeded max depth (5b5b5b")
    with pytest.raises(E.StatusError) as ei:
        parse_body(laughs(9, 9), "apply")
    assert ei.value.status()["message"] == ("error decoding YAML: error converting YAML to JSON: yaml: document "
                                            "contains excessive aliasing")


@pytest.mark.parametrize("rv,n", [("", 0), ("0", 0), ("7", 7), (str(2 ** 64 - 1), 2 ** 64 - 1)])
def test_resource_version_accepted(rv, n):
    assert parse_resource_version(rv) == n


@pytest.mark.parametrize("rv,problem", [(" 1", "invalid syntax"), ("+1", "invalid syntax"), ("-1", "invalid syntax"),
                                        ("1_0", "invalid syntax"), ("\uff11", "invalid syntax"),
                                        ("\u00b2", "invalid syntax"), (str(2 ** 64), "value out of range")])
def test_resource_version_refused_as_strconv_parseuint(rv, problem):
    with pytest.raises(E.StatusError) as ei:
        parse_resource_version(rv)
    q = json.dumps(rv, ensure_ascii=False)
    assert ei.value.code == 400
    assert ei.value.status()["message"] == (f"invalid resource version: resourceVersion: Invalid value: {q}: "
                                            f"strconv.ParseUint: parsing {q}: {problem}")


# --- the walks after decoding ---------------------------------------------------------------
SERVER_STACK = 150  # frames in use when a request reaches these walks: 27 measured at fieldmanager.apply


def on_deep_stack(fn):
    """Run ``fn`` with SERVER_STACK frames in use below it."""
    def down(n):
        return fn() if n <= 0 else down(n - 1)
    base = len(__import__("inspect").stack(0))
    return down(max(SERVER_STACK - base, 0))


def test_recursion_limit_is_the_default():
    assert sys.getrecursionlimit() == 1000  # the bounds above were chosen against it


def test_every_walk_handles_the_deepest_object():
    depth = limits.MAX_OBJECT_DEPTH
    obj = {"apiVersion": "v1", "kind": "K", "metadata": {"name": "x"}, "spec": deep_obj(depth - 1)}
    limits.check_depth(obj, depth)
    patch = {"spec": deep_obj(limits.MAX_DEPTH - 1)}
    on_deep_stack(lambda: orjson.dumps({"kind": "Table", "rows": [{"object": obj}]}))
    on_deep_stack(lambda: yaml.safe_dump({"items": [obj]}))
    on_deep_stack(lambda: apply_merge_patch(obj, patch))
    on_deep_stack(lambda: strategic_merge_patch(obj, patch))
    on_deep_stack(lambda: apply_json_patch(obj, [{"op": "test", "path": "/spec", "value": obj["spec"]}]))
    on_deep_stack(lambda: jsonscan.loads_strict(json.dumps(patch).encode()))
    on_deep_stack(lambda: parse_body(orjson.dumps(patch), "json", "K"))
    on_deep_stack(lambda: yamlscan.load_yaml(orjson.dumps(patch)))
    on_deep_stack(lambda: unknown_fields(_Model, obj))
    applied = fieldmanager.apply(None, {"apiVersion": "v1", "kind": "K", **patch}, manager="m", api_version="v1",
                                 force=False, group="g", resource="ks", name="x")
    on_deep_stack(lambda: fieldmanager.apply(applied, {"apiVersion": "v1", "kind": "K", **patch}, manager="n",
                                             api_version="v1", force=True, group="g", resource="ks", name="x"))
    limits.check_depth(applied, depth)


def test_fields_v1_that_is_not_a_field_set_is_tolerated():
    assert fieldmanager.from_fields_v1({"f:a": 5, "f:b": {"f:c": [1]}, "x": {}}) == {("a",), ("b", "c")}
    assert fieldmanager.from_fields_v1(7) == set()
