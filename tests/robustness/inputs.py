"""Hypothesis strategies for hostile request input, shared by the in-process fuzz and its
over-HTTPS sample: bodies (JSON, YAML, mutated bytes, hand-made hostile shapes), JSON /
merge / strategic patches, apply configurations, selectors and continue tokens.

The hand-made shapes are the ones issue 10 lists (deep nesting, lone surrogates, integers
beyond 64 bits, non-string keys, aliasing) kept small enough to run in-process: the full
alias bomb is only ever sent to a process with a memory limit (see ``alias_bomb``)."""
from __future__ import annotations

import base64
import json

import yaml
from hypothesis import strategies as st

API_VERSION = "wardle.example.com/v1beta1"
KIND = "Flunder"

scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=20) | st.sampled_from(["", "0", "-1", "1e999", "Flunder", "a/b", "~1", "\x00"]))
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=10), c,
                                                                                         max_size=5),
                           max_leaves=25)
# YAML maps may have keys of any scalar type (issue 10: ``spec: {1: c}`` in an apply)
yaml_keys = st.text(max_size=8) | st.integers() | st.booleans() | st.none() | st.floats(allow_nan=False)
yaml_values = st.recursive(scalars, lambda c: st.lists(c, max_size=5) | st.dictionaries(yaml_keys, c, max_size=5),
                           max_leaves=25)

names = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?\Z") | st.text(max_size=70)
fields_v1 = st.recursive(st.just({}) | st.integers() | st.text(max_size=5),
                         lambda c: st.dictionaries(st.sampled_from(["f:spec", "f:metadata", "f:labels", "k:{}", "v:1",
                                                                    "."]) | st.text(max_size=6), c, max_size=4),
                         max_leaves=12)
managed_fields = st.lists(st.fixed_dictionaries(
    {"manager": st.text(max_size=10), "operation": st.sampled_from(["Apply", "Update", "x"])},
    optional={"fieldsType": st.sampled_from(["FieldsV1", "x"]), "fieldsV1": fields_v1, "apiVersion": st.text(max_size=10),
              "time": st.text(max_size=30) | st.integers(), "subresource": st.text(max_size=8)}), max_size=3)
metadata = st.fixed_dictionaries({}, optional={
    "name": names, "generateName": names, "namespace": st.sampled_from(["robust", "other", ""]) | st.text(max_size=10),
    "labels": st.dictionaries(st.text(max_size=20), st.text(max_size=20) | json_values, max_size=4),
    "annotations": st.dictionaries(st.text(max_size=20), st.text(max_size=40) | json_values, max_size=3),
    "managedFields": managed_fields | json_values, "resourceVersion": st.text(max_size=25) | st.integers(),
    "finalizers": st.lists(st.text(max_size=20), max_size=3) | json_values,
    "ownerReferences": json_values, "uid": st.text(max_size=40), "deletionTimestamp": st.text(max_size=25)})
spec = st.fixed_dictionaries({}, optional={
    "flunderReference": st.text(max_size=20) | json_values, "fischerReference": st.text(max_size=20) | json_values,
    "referenceType": st.sampled_from(["Flunder", "Fischer", "x"]) | json_values,
    "reference": json_values}) | json_values
flunders = st.fixed_dictionaries({"apiVersion": st.just(API_VERSION) | st.text(max_size=30),
                                  "kind": st.just(KIND) | st.text(max_size=10)},
                                 optional={"metadata": metadata | json_values, "spec": spec, "status": json_values})
flunders_json = flunders.map(lambda d: {**d, "apiVersion": API_VERSION, "kind": KIND}) | flunders


def _nested(depth: int, kind: str) -> bytes:
    """A document nested ``depth`` levels, as JSON or YAML (flow and block)."""
    if kind == "json-array":
        return b"[" * depth + b"]" * depth
    if kind == "json-object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    if kind == "yaml-flow":
        return b"[" * depth + b"]" * depth
    return "".join(f"{'  ' * i}a:\n" for i in range(depth)).encode() + b"  " * depth + b"b"


def in_spec(inner: bytes, fmt: str) -> bytes:
    """``inner`` (a JSON or YAML value) as the spec of an otherwise valid Flunder."""
    if fmt == "json":
        return (b'{"apiVersion":"' + API_VERSION.encode() + b'","kind":"Flunder","metadata":{"name":"nasty"},'
                b'"spec":{"x":' + inner + b"}}")
    return (f"apiVersion: {API_VERSION}\nkind: Flunder\nmetadata:\n  name: nasty\nspec:\n  x: ".encode()
            + inner.replace(b"\n", b"\n    ") + b"\n")


def in_fields_v1(inner: bytes, fmt: str) -> bytes:
    """``inner`` as the ``fieldsV1`` of a managedFields entry: a free-form field every
    version keeps (where issue 10 put its YAML)."""
    if fmt == "json":
        return (b'{"apiVersion":"' + API_VERSION.encode() + b'","kind":"Flunder","metadata":{"name":"nasty",'
                b'"managedFields":[{"manager":"m","operation":"Apply","fieldsType":"FieldsV1","fieldsV1":{"f:x":'
                + inner + b"}}]}}")
    return (f"apiVersion: {API_VERSION}\nkind: Flunder\nmetadata:\n  name: nasty\n  managedFields:\n  - manager: m\n"
            f"    operation: Apply\n    fieldsType: FieldsV1\n    fieldsV1:\n      f:x: ").encode() \
        + inner.replace(b"\n", b"\n        ") + b"\n"


def small_alias_bomb(levels: int, width: int) -> bytes:
    """YAML aliases that expand ``width ** levels`` times (kept small in-process)."""
    lines = [f"a0: &a0 [{', '.join(['x'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    body = "\n".join("      " + ln for ln in lines)
    return (f"apiVersion: {API_VERSION}\nkind: Flunder\nmetadata:\n  name: bomb\n  managedFields:\n"
            f"  - manager: m\n    operation: Apply\n    fieldsType: FieldsV1\n    fieldsV1:\n{body}\n").encode()


def alias_bomb() -> bytes:
    """Issue 10's case: ~600 bytes of YAML that expand to 9**9 nodes once walked."""
    return small_alias_bomb(9, 9)


def _nasty_bodies() -> list[tuple[str, bytes]]:
    """(content kind, body): the hostile shapes issue 10 lists, at sizes around the limits."""
    out: list[tuple[str, bytes]] = []
    for where in (in_spec, in_fields_v1):
        for depth in (100, 990, 1000, 1024, 3000, 10_001, 100_000):
            out.append(("json", where(_nested(depth, "json-array"), "json")))
            out.append(("json", where(_nested(depth, "json-object"), "json")))
            if depth <= 10_001:
                out.append(("yaml", where(_nested(depth, "yaml-flow"), "yaml")))
            if depth <= 1000:  # block style grows with the square of the depth
                out.append(("yaml", where(_nested(depth // 3, "yaml-block"), "yaml")))
        for big in ("18446744073709551616", "9223372036854775808", "-9223372036854775809", "1" * 400, "1e400",
                    "-0", "1.0e-400"):
            out.append(("json", where(big.encode(), "json")))
            out.append(("yaml", where(big.encode(), "yaml")))
    for s in ('"\\ud800"', '"\\udfff"', '"\\ud800\\udc00"', "\"\\x00\"", '"\\U0010ffff"', "!!binary AAAA", "!!python/object:os.system x",
              "!!set {a, b}", "!!timestamp 2001-12-14", "&a [*a]", "*unknown", "? [a]\n: b", "{1: c}", "{null: c}",
              "{[1]: c}", "<<: {a: 1}"):
        out.append(("yaml", in_spec(s.encode(), "yaml")))
    for raw in (b"", b"\xef\xbb\xbf{}", b"\xff\xfe{}", b"\x00", b"{" * 3 + b'"', b'{"a":1,"a":2}', b"null", b"[]", b"1",
                b'"x"', b"\xed\xa0\x80", b'{"apiVersion":"' + API_VERSION.encode() + b'","kind":"Flunder","metadata":{"name":"\xed\xa0\x80"}}',
                b"--- a\n--- b\n", b"%YAML 9.9\n---\na: 1", b"a: b: c", b"\t{}"):
        out.append(("json", raw))
        out.append(("yaml", raw))
    out.append(("yaml", small_alias_bomb(4, 8)))
    return out


NASTY = _nasty_bodies()


def _mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """Apply (position, kind, byte) edits: 0 replace, 1 insert, 2 delete."""
    buf = bytearray(data)
    for pos, kind, b in edits:
        if not buf:
            buf.append(b)
            continue
        p = pos % len(buf)
        if kind == 0:
            buf[p] = b
        elif kind == 1:
            buf.insert(p, b)
        else:
            del buf[p]
    return bytes(buf)


edits = st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 2), st.integers(0, 255)), min_size=1, max_size=6)


def _json_dumps(v) -> bytes:
    return json.dumps(v, allow_nan=True).encode()


def _yaml_dumps(v) -> bytes:
    return yaml.safe_dump(v, allow_unicode=True).encode()


json_docs = flunders_json.map(_json_dumps) | json_values.map(_json_dumps)
#: bodies for a ``application/json`` create or update
json_bodies = (json_docs | st.builds(_mutate, json_docs, edits) | st.binary(max_size=200)
               | st.sampled_from([b for k, b in NASTY if k == "json"]))
yaml_docs = (flunders_json.map(_yaml_dumps) | st.fixed_dictionaries({"apiVersion": st.just(API_VERSION),
                                                                     "kind": st.just(KIND),
                                                                     "metadata": st.just({"name": "y"}),
                                                                     "spec": yaml_values}).map(_yaml_dumps))
#: bodies for a ``application/yaml`` create or an apply (``application/apply-patch+yaml``)
yaml_bodies = (yaml_docs | st.builds(_mutate, yaml_docs, edits) | st.text(max_size=200).map(str.encode)
               | st.sampled_from([b for k, b in NASTY if k == "yaml"]))

pointers = (st.sampled_from(["", "/", "/spec", "/spec/flunderReference", "/metadata/labels/a", "/metadata/labels",
                             "/metadata/managedFields/0", "/metadata/managedFields/-", "/status", "/metadata/name",
                             "/metadata/namespace", "/spec/x/-1", "/a~2b", "/metadata/labels/~", "/0", "/-",
                             "/metadata/managedFields/99999999999999999999"])
            | st.lists(st.text(max_size=6), max_size=4).map(lambda ps: "".join("/" + p for p in ps)))
json_patch_ops = st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test"]) | st.text(max_size=6) | json_values},
    optional={"path": pointers | json_values, "from": pointers | json_values, "value": json_values | flunders})
json_patches = (st.lists(json_patch_ops, max_size=6).map(_json_dumps)
                | st.builds(_mutate, st.lists(json_patch_ops, max_size=3).map(_json_dumps), edits)
                | json_bodies)
merge_patch_docs = (st.fixed_dictionaries({}, optional={"metadata": metadata | json_values, "spec": spec,
                                                        "status": json_values, "apiVersion": st.text(max_size=30),
                                                        "kind": st.text(max_size=10)}) | json_values)
_smp_directives = st.fixed_dictionaries({}, optional={
    "$patch": st.sampled_from(["replace", "delete", "merge", "x"]) | json_values,
    "$retainKeys": json_values, "$setElementOrder/finalizers": json_values, "$deleteFromPrimitiveList/finalizers":
        json_values})
merge_patches = (merge_patch_docs.map(_json_dumps) | st.builds(_mutate, merge_patch_docs.map(_json_dumps), edits)
                 | json_bodies)
strategic_patches = (st.builds(lambda a, b: {**a, **b} if isinstance(a, dict) else a, merge_patch_docs,
                               _smp_directives).map(_json_dumps) | merge_patches)

# --- selectors and continue tokens ----------------------------------------------------
_sel_tokens = st.sampled_from(["a", "b", "x/y", "example.com/k", "=", "==", "!=", "!", ",", " ", "in", "notin",
                               "(", ")", "exists", "gt", "lt", "1", "-5", "99999999999999999999", "a" * 64, "\\",
                               "\\,", "\\=", "metadata.name", "spec.color", "\x00", "é", "\n"])
label_selectors = st.lists(_sel_tokens, max_size=12).map("".join) | st.text(max_size=40)
field_selectors = label_selectors
label_sets = st.dictionaries(st.text(max_size=10) | _sel_tokens, st.text(max_size=10) | _sel_tokens, max_size=4)


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


continue_docs = st.fixed_dictionaries({}, optional={
    "v": st.just("meta.k8s.io/v1") | json_values, "rv": st.integers() | json_values | st.text(max_size=25),
    "start": st.text(max_size=20) | json_values})
continue_tokens = (continue_docs.map(lambda d: _b64(_json_dumps(d)))
                   | st.builds(lambda d, e: _b64(_mutate(_json_dumps(d), e)), continue_docs, edits)
                   | json_values.map(lambda v: _b64(_json_dumps(v))) | st.binary(max_size=60).map(_b64)
                   | st.text(max_size=60))
