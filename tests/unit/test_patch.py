"""JSON patch, merge patch and strategic merge patch as kube applies and answers them."""
from __future__ import annotations

import copy

import pytest

from extserver.machinery.errors import StatusError
from extserver.machinery.patch import (
    MAX_JSON_PATCH_OPERATIONS,
    PatchError,
    apply_json_patch,
    apply_merge_patch,
    decode_json_patch,
    decode_merge_patch,
    decode_strategic_merge_patch,
    go_json_syntax_error,
    go_sprint,
    strategic_merge_patch,
)

GENERIC_422 = "the server rejected our request due to an error in our request"

DOC = {"metadata": {"name": "x", "labels": {"a": "1"}}, "spec": {"list": [1, 2, 3], "s": "v", "n": None},
       "status": {}}


def patched(ops, doc=None):
    return apply_json_patch(copy.deepcopy(DOC if doc is None else doc), ops)


def failure(ops, doc=None) -> PatchError:
    with pytest.raises(PatchError) as e:
        apply_json_patch(copy.deepcopy(DOC if doc is None else doc), ops)
    return e.value


# --- JSON patch: operations -----------------------------------------------------------

@pytest.mark.parametrize("ops,path,expected", [
    ([{"op": "add", "path": "/spec/new", "value": {"x": [1]}}], ("spec", "new"), {"x": [1]}),
    ([{"op": "add", "path": "/spec/s", "value": "w"}], ("spec", "s"), "w"),  # add replaces a member
    ([{"op": "add", "path": "/spec/list/-", "value": 4}], ("spec", "list"), [1, 2, 3, 4]),
    ([{"op": "add", "path": "/spec/list/0", "value": 0}], ("spec", "list"), [0, 1, 2, 3]),
    ([{"op": "add", "path": "/spec/list/3", "value": 4}], ("spec", "list"), [1, 2, 3, 4]),
    ([{"op": "add", "path": "/spec/list/-1", "value": 4}], ("spec", "list"), [1, 2, 3, 4]),  # v4: negative
    ([{"op": "add", "path": "/spec/list/-4", "value": 0}], ("spec", "list"), [0, 1, 2, 3]),
    ([{"op": "add", "path": "/spec/list/01", "value": 9}], ("spec", "list"), [1, 9, 2, 3]),  # Atoi("01")
    ([{"op": "add", "path": "/spec/nothing"}], ("spec", "nothing"), None),  # absent value is null
    ([{"op": "add", "path": "/metadata/labels/a~1b", "value": "y"}], ("metadata", "labels", "a/b"), "y"),
    ([{"op": "add", "path": "/metadata/labels/m~0n", "value": "y"}], ("metadata", "labels", "m~n"), "y"),
    ([{"op": "add", "path": "/metadata/labels/~01", "value": "y"}], ("metadata", "labels", "~1"), "y"),
    ([{"op": "add", "path": "/metadata/labels/", "value": "e"}], ("metadata", "labels", ""), "e"),
    ([{"op": "remove", "path": "/spec/s"}], ("spec",), {"list": [1, 2, 3], "n": None}),
    ([{"op": "remove", "path": "/spec/list/1"}], ("spec", "list"), [1, 3]),
    ([{"op": "remove", "path": "/spec/list/-1"}], ("spec", "list"), [1, 2]),
    ([{"op": "replace", "path": "/spec/s", "value": 5}], ("spec", "s"), 5),
    ([{"op": "replace", "path": "/spec/list/2", "value": 30}], ("spec", "list"), [1, 2, 30]),
    ([{"op": "replace", "path": "/spec/missing", "value": 1}], ("spec", "missing"), 1),  # v4 adds it
    ([{"op": "move", "from": "/spec/s", "path": "/status/s"}], ("status",), {"s": "v"}),
    ([{"op": "move", "from": "/spec/list/0", "path": "/spec/list/-"}], ("spec", "list"), [2, 3, 1]),
    ([{"op": "move", "from": "/spec/s", "path": "/spec/s"}], ("spec", "s"), "v"),
    ([{"op": "copy", "from": "/spec/list", "path": "/status/list"}], ("status", "list"), [1, 2, 3]),
    ([{"op": "copy", "from": "/spec/nope", "path": "/status/c"}], ("status", "c"), None),  # v4: null
    ([{"op": "test", "path": "/spec/s", "value": "v"}], ("spec", "s"), "v"),
    ([{"op": "test", "path": "/spec/list", "value": [1, 2, 3]}], ("spec", "list"), [1, 2, 3]),
    ([{"op": "test", "path": "/spec/list/1", "value": 2.0}], ("spec", "list"), [1, 2, 3]),
    ([{"op": "test", "path": "/spec/n", "value": None}], ("spec", "n"), None),
    ([{"op": "test", "path": "/spec/absent", "value": None}], ("spec",), DOC["spec"]),
    ([{"op": "test", "path": "/spec/absent"}], ("spec",), DOC["spec"]),
    ([{"op": "test", "path": "", "value": DOC}], ("spec", "s"), "v"),
    ([{"op": "add", "path": "/spec/a", "value": {}}, {"op": "add", "path": "/spec/a/b", "value": 1},
      {"op": "copy", "from": "/spec/a", "path": "/spec/c"}, {"op": "replace", "path": "/spec/c/b", "value": 2}],
     ("spec",), {"list": [1, 2, 3], "s": "v", "n": None, "a": {"b": 1}, "c": {"b": 2}}),
    # a path without a leading '/' addresses the root member named by its last token (v4)
    ([{"op": "add", "path": "x/y", "value": 1}], ("y",), 1),
])
def test_json_patch_ops(ops, path, expected):
    result = patched(ops)
    for p in path:
        result = result[p]
    assert result == expected


def test_json_patch_does_not_mutate_input_and_copies_deeply():
    doc = copy.deepcopy(DOC)
    out = apply_json_patch(doc, [{"op": "copy", "from": "/spec/list", "path": "/status/l"},
                                 {"op": "add", "path": "/status/l/-", "value": 4}])
    assert doc == DOC
    assert out["spec"]["list"] == [1, 2, 3]
    assert out["status"]["l"] == [1, 2, 3, 4]
    ops = [{"op": "add", "path": "/a", "value": {}}, {"op": "add", "path": "/a/b", "value": 1},
           {"op": "add", "path": "/c", "value": [0]}, {"op": "add", "path": "/c/-", "value": 1}]
    assert apply_json_patch({}, ops) == {"a": {"b": 1}, "c": [0, 1]}
    assert ops[0]["value"] == {} and ops[2]["value"] == [0]  # op values are not aliased


def test_json_patch_root_replace():
    assert patched([{"op": "replace", "path": "", "value": {"a": 1}}]) == {"a": 1}
    assert patched([{"op": "replace", "path": "", "value": [1]}]) == [1]


@pytest.mark.parametrize("ops,detail", [
    ([{"op": "add", "path": "/spec/list/5", "value": 1}],
     "error in add for path: '/spec/list/5': Unable to access invalid index: 5: invalid index referenced"),
    ([{"op": "add", "path": "/spec/list/-5", "value": 1}],
     "error in add for path: '/spec/list/-5': Unable to access invalid index: -5: invalid index referenced"),
    ([{"op": "add", "path": "/spec/list/x", "value": 1}],
     "error in add for path: '/spec/list/x': value was not a proper array index: 'x': "
     'strconv.Atoi: parsing "x": invalid syntax'),
    ([{"op": "add", "path": "/nope/x", "value": 1}],
     'add operation does not apply: doc is missing path: "/nope/x": missing value'),
    ([{"op": "add", "path": "/spec/s/x", "value": 1}],
     'add operation does not apply: doc is missing path: "/spec/s/x": missing value'),
    ([{"op": "add", "path": "/spec/n/x", "value": 1}],
     'add operation does not apply: doc is missing path: "/spec/n/x": missing value'),
    ([{"op": "add", "path": "", "value": {}}], 'add operation does not apply: doc is missing path: "": missing value'),
    ([{"op": "add", "value": 1}], "add operation failed to decode path: missing value"),
    ([{"op": "remove", "path": "/spec/zz"}],
     "error in remove for path: '/spec/zz': Unable to remove nonexistent key: zz: missing value"),
    ([{"op": "remove", "path": "/spec/list/3"}],
     "error in remove for path: '/spec/list/3': Unable to access invalid index: 3: invalid index referenced"),
    ([{"op": "remove", "path": "/spec/list/a"}],
     "error in remove for path: '/spec/list/a': strconv.Atoi: parsing \"a\": invalid syntax"),
    ([{"op": "remove", "path": "/a/b"}], 'remove operation does not apply: doc is missing path: "/a/b": missing value'),
    ([{"op": "replace", "path": "/spec/list/3", "value": 1}],
     "replace operation does not apply: doc is missing key: /spec/list/3: missing value"),
    ([{"op": "replace", "path": "/a/b", "value": 1}],
     "replace operation does not apply: doc is missing path: /a/b: missing value"),
    ([{"op": "replace", "path": "", "value": 1}], "replace operation value must be object or array: %!w(<nil>)"),
    ([{"op": "replace", "path": 5, "value": 1}],
     "replace operation failed to decode path: json: cannot unmarshal number into Go value of type string"),
    # moving a value into its own child: the source is gone when the destination is resolved
    ([{"op": "move", "from": "/spec", "path": "/spec/child"}],
     "move operation does not apply: doc is missing destination path: /spec/child: missing value"),
    ([{"op": "move", "from": "/spec/zz", "path": "/status/zz"}],
     "error in move for path: 'zz': Unable to remove nonexistent key: zz: missing value"),
    ([{"op": "move", "from": "/a/b", "path": "/c"}],
     "move operation does not apply: doc is missing from path: /a/b: missing value"),
    ([{"op": "move", "path": "/c"}],
     "move operation failed to decode from: operation, missing from field: missing value"),
    ([{"op": "copy", "from": "/spec/list/7", "path": "/c"}],
     "error in copy for from: '/spec/list/7': Unable to access invalid index: 7: invalid index referenced"),
    ([{"op": "copy", "from": "/spec/s", "path": "/a/b"}],
     "copy operation does not apply: doc is missing destination path: /a/b: missing value"),
    ([{"op": "copy", "from": "/spec/s", "path": "/spec/list/9"}],
     "error while adding value during copy: Unable to access invalid index: 9: invalid index referenced"),
    ([{"op": "test", "path": "/spec/s", "value": "w"}], "testing value /spec/s failed: test failed"),
    ([{"op": "test", "path": "/spec/s"}], "testing value /spec/s failed: test failed"),
    ([{"op": "test", "path": "/spec/absent", "value": 1}], "testing value /spec/absent failed: test failed"),
    ([{"op": "test", "path": "/spec/list/0", "value": True}], "testing value /spec/list/0 failed: test failed"),
    ([{"op": "test", "path": "/spec/list", "value": [1, 2]}], "testing value /spec/list failed: test failed"),
    ([{"op": "test", "path": "/spec/list/4", "value": 1}],
     "error in test for path: '/spec/list/4': Unable to access invalid index: 4: invalid index referenced"),
    ([{"op": "test", "path": "/x/y", "value": 1}], "test operation does not apply: is missing path: /x/y: missing value"),
    ([{"op": "test", "path": "", "value": {}}], "testing value  failed: test failed"),
    ([{"op": "bogus", "path": "/a"}], "Unexpected kind: bogus"),
    ([{"path": "/a"}], "Unexpected kind: unknown"),
    ([{"op": 1, "path": "/a"}], "Unexpected kind: unknown"),
    ([None], "Unexpected kind: unknown"),
    # the patch stops at the first failing operation
    ([{"op": "add", "path": "/spec/ok", "value": 1}, {"op": "test", "path": "/spec/ok", "value": 2}],
     "testing value /spec/ok failed: test failed"),
])
def test_json_patch_failures_are_422_with_generic_message(ops, detail):
    err = failure(ops)
    assert isinstance(err, StatusError)
    assert (err.code, err.reason, err.message, err.detail) == (422, "Invalid", GENERIC_422, detail)
    # kube's fixed message; the failing operation in the one cause (kube drops it: see PatchError)
    assert err.status() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": GENERIC_422, "reason": "Invalid",
                            "details": {"causes": [{"message": detail}]}, "code": 422}


def test_json_patch_operation_limit():
    ok = [{"op": "test", "path": "/spec/s", "value": "v"}] * MAX_JSON_PATCH_OPERATIONS
    assert patched(ok) == DOC
    err = failure(ok + ok[:1])
    assert (err.code, err.reason) == (413, "RequestEntityTooLarge")
    assert err.message == ("Request entity too large: The allowed maximum operations in a JSON patch is 10000, "
                           "got 10001")


def test_json_patch_copy_size_limit():
    doc = {"a": "x" * 100}
    ops = [{"op": "copy", "from": "/a", "path": "/b"}, {"op": "copy", "from": "/a", "path": "/c"}]
    assert apply_json_patch(doc, ops, max_copy_bytes=204)["c"] == "x" * 100
    with pytest.raises(PatchError) as e:
        apply_json_patch(doc, ops, max_copy_bytes=203)
    assert e.value.code == 422
    assert e.value.detail == ("Unable to complete the copy, the accumulated size increase of copy is 204, "
                              "exceeding the limit 203")


# --- JSON patch: decoding the body ------------------------------------------------------

@pytest.mark.parametrize("body,message", [
    (b"", "unexpected end of JSON input"),
    (b"[", "unexpected end of JSON input"),
    (b"{", "unexpected end of JSON input"),
    (b"nul", "invalid character ' ' in literal null (expecting 'l')"),
    (b"[tru]", "invalid character ']' in literal true (expecting 'e')"),
    (b"[] x", "invalid character 'x' after top-level value"),
    (b"[1,2]]", "invalid character ']' after top-level value"),
    (b'[{"op":"add"},]', "invalid character ']' looking for beginning of value"),
    (b"['x']", "invalid character '\\'' looking for beginning of value"),
    (b"NaN", "invalid character 'N' looking for beginning of value"),
    (b'{"a" 1}', "invalid character '1' after object key"),
    (b'{"a":1 "b"}', "invalid character '\"' after object key:value pair"),
    (b'{"a":1,}', "invalid character '}' looking for beginning of object key string"),
    (b"{1:2}", "invalid character '1' looking for beginning of object key string"),
    (b"[1 2]", "invalid character '2' after array element"),
    (b'["\\q"]', "invalid character 'q' in string escape code"),
    (b'["\\u12g4"]', "invalid character 'g' in \\u hexadecimal character escape"),
    (b'["a\x01"]', "invalid character '\\x01' in string literal"),
    (b"[1.]", "invalid character ']' after decimal point in numeric literal"),
    (b"[-]", "invalid character ']' in numeric literal"),
    (b"[1e+]", "invalid character ']' in exponent of numeric literal"),
    (b"[01]", "invalid character '1' after array element"),
    (b"\xc3\xa9", "invalid character '\u00c3' looking for beginning of value"),
    (b'{"a":1}', "json: cannot unmarshal object into Go value of type jsonpatch.Patch"),
    (b'"ops"', "json: cannot unmarshal string into Go value of type jsonpatch.Patch"),
    (b"[1]", "json: cannot unmarshal number into Go value of type jsonpatch.Operation"),
    (b"[true]", "json: cannot unmarshal bool into Go value of type jsonpatch.Operation"),
    (b"[[]]", "json: cannot unmarshal array into Go value of type jsonpatch.Operation"),
])
def test_decode_json_patch_errors(body, message):
    with pytest.raises(PatchError) as e:
        decode_json_patch(body)
    assert (e.value.code, e.value.reason, e.value.message) == (400, "BadRequest", message)
    assert "details" not in e.value.status()


@pytest.mark.parametrize("body", [b"[]", b"[{}]", b"  [ ] ", b'"x"', b"123", b"12 ", b'{"a":{}}', b"[1e5, -0.5]"])
def test_go_json_syntax_accepts_valid_json(body):
    assert go_json_syntax_error(body) is None


def test_decode_json_patch_ok():
    assert decode_json_patch(b"null") == ([], [])
    ops, strict = decode_json_patch(b'[{"op":"add","path":"/a","value":1}, null, {"Op":"x"}]')
    assert ops == [{"op": "add", "path": "/a", "value": 1}, None, {"Op": "x"}]
    assert strict == []
    # invalid UTF-8 is valid JSON for Go (decoded as U+FFFD)
    assert decode_json_patch(b'[{"op":"add","path":"/a","value":"\xff"}]')[0][0]["value"] == "\ufffd"


def test_decode_json_patch_strict():
    ops, strict = decode_json_patch(
        b'[{"op":"add","path":"/a","value":1,"extra":2,"op":"add"},{"op":"remove","path":"/b","Path":"/c"}]',
        strict=True)
    assert ops == [{"op": "add", "path": "/a", "value": 1, "extra": 2}, {"op": "remove", "path": "/b", "Path": "/c"}]
    assert strict == ['json patch unknown field "[0].extra"', 'json patch unknown field "[1].Path"',
                      'json patch duplicate field "[0].op"']
    for body, message in [
        (b"{", "error decoding patch: unexpected end of JSON input"),
        (b'{"op":"add"}', "error decoding patch: json: cannot unmarshal object into Go value of type "
                          "[]handlers.jsonPatchOp"),
        (b"[1]", "error decoding patch: json: cannot unmarshal number into Go value of type handlers.jsonPatchOp"),
        (b'[{"op":1}]', "error decoding patch: json: cannot unmarshal number into Go struct field jsonPatchOp.op "
                        "of type string"),
        (b'[{"op":"add","path":["x"]}]', "error decoding patch: json: cannot unmarshal array into Go struct "
                                         "field jsonPatchOp.path of type string"),
    ]:
        with pytest.raises(PatchError) as e:
            decode_json_patch(body, strict=True)
        assert (e.value.code, e.value.message) == (400, message)


# --- merge patch ------------------------------------------------------------------------

@pytest.mark.parametrize("doc,patch,expected", [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ({"a": None}, {"a": {"b": None, "c": 1}}, {"a": {"c": 1}}),  # a null member is replaced, nulls pruned
    ({"a": 1}, {"a": {"b": None}}, {"a": {}}),
    ({}, {"a": [1, None, {"x": None, "y": 2}]}, {"a": [1, None, {"y": 2}]}),  # nulls in arrays stay
    ({"a": {"b": [1]}}, {"a": {"b": [2, 3]}}, {"a": {"b": [2, 3]}}),  # arrays are replaced
    ({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": {"y": {"z": 1, "w": 2}}}},
     {"metadata": {"labels": {"a": None, "c": "3"}}, "spec": {"x": {"y": {"z": None}}}},
     {"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"x": {"y": {"w": 2}}}}),
    ({"a": 1}, [1, None], [1, None]),  # a non-object patch is the result
])
def test_merge_patch(doc, patch, expected):
    before = copy.deepcopy(doc)
    assert apply_merge_patch(doc, patch) == expected
    assert doc == before


def test_decode_merge_patch():
    assert decode_merge_patch(b'{"a":null}') == ({"a": None}, [])
    assert decode_merge_patch(b"[1]") == ([1], [])
    for body in (b"null", b"{", b"5", b'"x"', b""):
        with pytest.raises(PatchError) as e:
            decode_merge_patch(body)
        assert (e.value.code, e.value.reason, e.value.message) == (400, "BadRequest", "Invalid JSON Patch")
    patch, strict = decode_merge_patch(b'{"a":1,"b":{"c":1,"c":2},"a":3}', strict=True)
    assert patch == {"a": 3, "b": {"c": 2}}
    assert strict == ['duplicate field "a"', 'duplicate field "b.c"']
    for body, message in [
        (b"[1]", "error decoding patch: json: cannot unmarshal array into Go value of type map[string]interface {}"),
        (b"{", "error decoding patch: unexpected end of JSON input"),
        (b"null", "Invalid JSON Patch"),
    ]:
        with pytest.raises(PatchError) as e:
            decode_merge_patch(body, strict=True)
        assert (e.value.code, e.value.message) == (400, message)


# --- strategic merge patch --------------------------------------------------------------

SMP_DOC = {
    "metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["f1", "f2"]},
    "spec": {
        "containers": [
            {"name": "a", "image": "x", "ports": [{"containerPort": 80, "name": "http"}]},
            {"name": "b", "image": "y"},
        ],
        "tags": ["t1"],
        "conf": {"k": "v", "k2": "v2"},
    },
}
KEYS = {"spec.containers": "name", "spec.containers.ports": "containerPort", "metadata.finalizers": ""}


def smp(patch, doc=None, keys=KEYS):
    source = copy.deepcopy(SMP_DOC if doc is None else doc)
    before = copy.deepcopy(source)
    out = strategic_merge_patch(source, patch, keys)
    assert source == before
    return out


def test_smp_without_schema_is_a_merge_patch():
    out = smp({"spec": {"containers": [{"name": "c"}], "conf": {"k": None, "n": 1}}}, keys=None)
    assert out["spec"]["containers"] == [{"name": "c"}]
    assert out["spec"]["conf"] == {"k2": "v2", "n": 1}
    assert out["metadata"] == SMP_DOC["metadata"]


def test_smp_merges_lists_by_key():
    out = smp({"spec": {"containers": [{"name": "b", "image": "z"}, {"name": "c", "image": "w"}]}})
    assert out["spec"]["containers"] == [
        {"name": "a", "image": "x", "ports": [{"containerPort": 80, "name": "http"}]},
        {"name": "b", "image": "z"},
        {"name": "c", "image": "w"},
    ]
    # nested merge key path through a merged list item; patch items come first when new
    out = smp({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 81}]}]}})
    assert out["spec"]["containers"][0]["ports"] == [{"containerPort": 81}, {"containerPort": 80, "name": "http"}]
    # a null inside a merged item deletes that member
    out = smp({"spec": {"containers": [{"name": "a", "image": None}]}})
    assert out["spec"]["containers"][0] == {"name": "a", "ports": [{"containerPort": 80, "name": "http"}]}


def test_smp_directives():
    out = smp({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}})
    assert out["spec"]["containers"] == [{"name": "b", "image": "y"}]
    out = smp({"spec": {"containers": [{"name": "q"}, {"$patch": "replace"}]}})
    assert out["spec"]["containers"] == [{"name": "q"}]
    out = smp({"spec": {"conf": {"$patch": "replace", "z": 1}}})
    assert out["spec"]["conf"] == {"z": 1}
    out = smp({"spec": {"conf": {"$patch": "delete"}}})
    assert out["spec"]["conf"] == {}
    out = smp({"spec": {"newmap": {"$patch": "delete"}}})
    assert "newmap" not in out["spec"]
    out = smp({"spec": {"new": {"a": {"$patch": "delete"}, "b": [1, {"$patch": "x"}], "c": None}}})
    assert out["spec"]["new"] == {"b": [1]}  # directives and nulls dropped from new values


def test_smp_primitive_lists():
    out = smp({"metadata": {"finalizers": ["f3", "f1"]}})
    assert out["metadata"]["finalizers"] == ["f3", "f1", "f2"]
    out = smp({"metadata": {"$deleteFromPrimitiveList/finalizers": ["f1", "nope"]}})
    assert out["metadata"]["finalizers"] == ["f2"]
    out = smp({"spec": {"tags": ["t2"]}})  # undeclared: replaced
    assert out["spec"]["tags"] == ["t2"]


def test_smp_set_element_order_and_retain_keys():
    out = smp({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                        "containers": [{"name": "a", "image": "new"}]}})
    assert [c["name"] for c in out["spec"]["containers"]] == ["b", "a"]
    assert out["spec"]["containers"][1]["image"] == "new"
    out = smp({"metadata": {"$setElementOrder/finalizers": ["f2", "f1"]}})
    assert out["metadata"]["finalizers"] == ["f2", "f1"]
    out = smp({"spec": {"$retainKeys": ["conf", "tags"], "tags": ["x"]}})
    assert out["spec"] == {"conf": {"k": "v", "k2": "v2"}, "tags": ["x"]}


@pytest.mark.parametrize("patch,code,message", [
    ({"spec": {"conf": {"$patch": "bogus"}}}, 500, "unknown patch type: bogus in map: map[$patch:bogus]"),
    ({"spec": {"containers": [{"$patch": 1.5}]}}, 500,
     "unknown patch type: %!s(float64=1.5) in map: map[$patch:1.5]"),
    ({"spec": {"containers": [{"image": "nokey"}]}}, 500,
     "map: map[image:nokey] does not contain declared merge key: name"),
    ({"spec": {"containers": [{"$patch": "merge"}]}}, 500, "merging lists cannot yet be specified in the patch"),
    ({"spec": {"containers": [{"$patch": "delete"}]}}, 500,
     "map: map[$patch:delete] does not contain declared merge key: name"),
    ({"metadata": {"finalizers": [1]}}, 500, "list element types are not identical: [[f1 f2] [1]]"),
    ({"metadata": {"finalizers": [["x"], "y"]}}, 500, "list element types are not identical: [[f1 f2] [[x] y]]"),
    ({"spec": {"containers": [["x"]]}, "metadata": {}}, 500,
     "list element types are not identical: [[map[image:x name:a ports:[map[containerPort:80 name:http]]] "
     "map[image:y name:b]] [[x]]]"),
    ({"spec": {"$retainKeys": ["conf"], "tags": []}}, 400, "invalid patch format of retainKeys"),
    ({"spec": {"$retainKeys": "conf"}}, 400, "invalid patch format of retainKeys"),
    ({"spec": {"$deleteFromPrimitiveList": ["x"]}}, 400, "invalid patch format of primitive list"),
    ({"spec": {"$setElementOrder": []}}, 400, "invalid patch format of setElementOrder list"),
])
def test_smp_errors(patch, code, message):
    with pytest.raises(PatchError) as e:
        smp(patch)
    assert (e.value.code, e.value.message) == (code, message)
    st = e.value.status()
    assert st["code"] == code
    assert ("reason" in st) is (code != 500)


def test_smp_list_of_lists_is_422():
    doc = {"spec": {"matrix": [["a"]]}}
    with pytest.raises(PatchError) as e:
        strategic_merge_patch(doc, {"spec": {"matrix": [["b"]]}}, {"spec.matrix": ""})
    assert (e.value.code, e.value.reason, e.value.message) == (422, "Invalid", GENERIC_422)
    assert e.value.detail == "lists of lists are not supported"
    # without a merge strategy the list is simply replaced
    assert strategic_merge_patch(doc, {"spec": {"matrix": [["b"]]}}) == {"spec": {"matrix": [["b"]]}}


def test_decode_strategic_merge_patch():
    assert decode_strategic_merge_patch(b"null") == ({}, [])
    assert decode_strategic_merge_patch(b'{"a":{"$patch":"delete"}}') == ({"a": {"$patch": "delete"}}, [])
    assert decode_strategic_merge_patch(b'{"a":1,"a":2}', strict=True) == ({"a": 2}, ['duplicate field "a"'])
    for body, message in [
        (b"[1]", "json: cannot unmarshal array into Go value of type map[string]interface {}"),
        (b"{", "unexpected end of JSON input"),
    ]:
        for strict in (False, True):
            with pytest.raises(PatchError) as e:
                decode_strategic_merge_patch(body, strict=strict)
            assert (e.value.code, e.value.message) == (400, message)


@pytest.mark.parametrize("value,text", [
    (None, "<nil>"), (True, "true"), (3, "3"), (1.5, "1.5"), (100000.0, "100000"), (1e6, "1e+06"),
    (1234567.0, "1.234567e+06"), (0.0001, "0.0001"), (0.00001, "1e-05"), (-2.5e-7, "-2.5e-07"), (0.0, "0"),
    ({"b": [1, "x"], "a": {}}, "map[a:map[] b:[1 x]]"),
])
def test_go_sprint(value, text):
    assert go_sprint(value) == text
