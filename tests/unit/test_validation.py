"""Name, label and ObjectMeta validation: kube's rules and exact messages (apimachinery v0.36)."""
from __future__ import annotations

import pytest

from extserver.machinery.errors import FieldError
from extserver.machinery.validation import (
    go_quote,
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_label_value,
    name_is_dns_label,
    name_is_dns_subdomain,
    validate_object_meta,
    validate_object_meta_update,
    validate_path_segment_name,
)

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
    "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
NAME_PART_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
    "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation "
    "is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
LABEL_KEY_MSG = (
    "a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix "
    "and '/' (e.g. 'example.com/MyName')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
    "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
    "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


@pytest.mark.parametrize("value,expected", [
    ("example.com", []),
    ("a", []),
    ("0-9.a-b", []),
    ("a" * 253, []),
    ("a" * 254, ["must be no more than 253 characters"]),
    ("Example.com", [SUBDOMAIN_MSG]),
    ("-a", [SUBDOMAIN_MSG]),
    ("a-", [SUBDOMAIN_MSG]),
    ("a..b", [SUBDOMAIN_MSG]),
    ("a_b", [SUBDOMAIN_MSG]),
    ("", [SUBDOMAIN_MSG]),
    ("a\n", [SUBDOMAIN_MSG]),  # Go's $ does not match before a trailing newline
    ("A" * 254, ["must be no more than 253 characters", SUBDOMAIN_MSG]),
])
def test_is_dns1123_subdomain(value, expected):
    assert is_dns1123_subdomain(value) == expected


@pytest.mark.parametrize("value,expected", [
    ("my-name", []),
    ("123-abc", []),
    ("a" * 63, []),
    ("a" * 64, ["must be no more than 63 characters"]),
    ("a.b", ["must not contain dots"]),
    ("A", [LABEL_MSG]),
    ("", [LABEL_MSG]),
    ("a" * 30 + "." + "b" * 40, ["must be no more than 63 characters", "must not contain dots"]),
])
def test_is_dns1123_label(value, expected):
    assert is_dns1123_label(value) == expected


def test_is_dns1035_label():
    assert is_dns1035_label("abc-123") == []
    assert is_dns1035_label("1abc") == [DNS1035_MSG]


@pytest.mark.parametrize("value,expected", [
    ("simple", []),
    ("MyName", []),
    ("my.name_x-1", []),
    ("example.com/MyName", []),
    ("a" * 63, []),
    ("a" * 64, ["name part must be no more than 63 bytes"]),
    ("é", [NAME_PART_MSG]),
    ("", ["name part must be non-empty", NAME_PART_MSG]),
    ("-a", [NAME_PART_MSG]),
    ("/a", ["prefix part must be non-empty"]),
    ("a/", ["name part must be non-empty", NAME_PART_MSG]),
    ("Example.com/a", ["prefix part " + SUBDOMAIN_MSG]),
    ("a" * 254 + "/a", ["prefix part must be no more than 253 bytes"]),
    ("a/b/c", [LABEL_KEY_MSG]),
])
def test_is_qualified_name(value, expected):
    assert is_qualified_name(value) == expected


@pytest.mark.parametrize("value,expected", [
    ("", []),
    ("v1", []),
    ("A.b_c-1", []),
    ("a" * 63, []),
    ("a" * 64, ["must be no more than 63 bytes"]),
    ("-a", [LABEL_VALUE_MSG]),
    ("a b", [LABEL_VALUE_MSG]),
    ("é" * 32, ["must be no more than 63 bytes", LABEL_VALUE_MSG]),  # 64 UTF-8 bytes
])
def test_is_valid_label_value(value, expected):
    assert is_valid_label_value(value) == expected


@pytest.mark.parametrize("name,prefix,expected", [
    ("ok", False, []),
    (".", False, ["may not be '.'"]),
    ("..", False, ["may not be '..'"]),
    ("...", False, []),
    ("a/b", False, ["may not contain '/'"]),
    ("a%b", False, ["may not contain '%'"]),
    ("/%", False, ["may not contain '/'", "may not contain '%'"]),
    (".", True, []),  # a prefix is only checked for forbidden substrings
    ("a/", True, ["may not contain '/'"]),
])
def test_validate_path_segment_name(name, prefix, expected):
    assert validate_path_segment_name(name, prefix) == expected


def test_name_functions_mask_trailing_dash_for_prefixes():
    assert name_is_dns_subdomain("foo-", True) == []
    assert name_is_dns_subdomain("foo-", False) == [SUBDOMAIN_MSG]
    assert name_is_dns_label("x-", True) == []
    # Go drops two characters before appending 'a': "a-.-" becomes "a-a" (valid), not "a-.a".
    assert name_is_dns_subdomain("a-.-", True) == []
    assert name_is_dns_label("-a-", True) == [LABEL_MSG]  # "-a"
    assert name_is_dns_label("-", True) == [LABEL_MSG]  # one character: not masked


@pytest.mark.parametrize("s,expected", [
    ("abc", '"abc"'),
    ('a"b\\c', '"a\\"b\\\\c"'),
    ("\n\t\a", '"\\n\\t\\a"'),
    ("\x01\x7f", '"\\x01\\x7f"'),
    ("é", '"é"'),
    ("\u00a0", '"\\u00a0"'),
])
def test_go_quote(s, expected):
    assert go_quote(s) == expected


def _err(type_: str, field: str, value, detail: str) -> FieldError:
    return FieldError(type_, field, value, detail)


def test_object_meta_valid_namespaced():
    meta = {"name": "foo", "namespace": "ns", "labels": {"app": "x", "example.com/tier": ""},
            "annotations": {"Example.com/Note": "anything at all"}, "finalizers": ["example.com/f"],
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "d", "uid": "1",
                                 "controller": True}],
            "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1"}]}
    assert validate_object_meta(meta, namespaced=True) == []


def test_object_meta_name_required_and_namespace_rules():
    errs = validate_object_meta({}, namespaced=True)
    assert errs == [_err("FieldValueRequired", "metadata.name", "", "name or generateName is required"),
                    _err("FieldValueRequired", "metadata.namespace", "", "")]
    assert str(errs[0]) == "metadata.name: Required value: name or generateName is required"
    assert str(errs[1]) == "metadata.namespace: Required value"

    errs = validate_object_meta({"name": "a", "namespace": "ns"}, namespaced=False)
    assert [str(e) for e in errs] == ["metadata.namespace: Forbidden: not allowed on this type"]

    errs = validate_object_meta({"name": "a", "namespace": "a.b"}, namespaced=True)
    assert [str(e) for e in errs] == ['metadata.namespace: Invalid value: "a.b": must not contain dots']


def test_object_meta_name_and_generate_name():
    errs = validate_object_meta({"name": "Bad_Name"}, namespaced=False)
    assert [str(e) for e in errs] == [f'metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_MSG}']

    errs = validate_object_meta({"generateName": "Foo-", "name": "foo-abcde"}, namespaced=False)
    assert [str(e) for e in errs] == [f'metadata.generateName: Invalid value: "Foo-": {SUBDOMAIN_MSG}']

    # The generic registry's check: path segments only.
    errs = validate_object_meta({"name": "Bad_Name"}, namespaced=False, name_fn=validate_path_segment_name)
    assert errs == []
    errs = validate_object_meta({"name": ".."}, namespaced=False, name_fn=validate_path_segment_name)
    assert [str(e) for e in errs] == ['metadata.name: Invalid value: "..": may not be \'..\'']

    errs = validate_object_meta({"name": "a"}, namespaced=False, path="object.metadata")
    assert errs == []
    errs = validate_object_meta({"name": "a/b"}, namespaced=False, name_fn=validate_path_segment_name,
                                path="object.metadata")
    assert [e.field for e in errs] == ["object.metadata.name"]


def test_object_meta_generation_labels_annotations():
    meta = {"name": "a", "generation": -1, "labels": {"a/b/c": "v v"}, "annotations": {"a b": "x"}}
    errs = validate_object_meta(meta, namespaced=False)
    assert [str(e) for e in errs] == [
        "metadata.generation: Invalid value: -1: must be greater than or equal to 0",
        f'metadata.labels: Invalid value: "a/b/c": {LABEL_KEY_MSG}',
        f'metadata.labels: Invalid value: "v v": {LABEL_VALUE_MSG}',
        f'metadata.annotations: Invalid value: "a b": {NAME_PART_MSG}',
    ]


def test_annotations_total_size_limit():
    just_fits = {"k": "x" * (256 * 1024 - 1)}
    assert validate_object_meta({"name": "a", "annotations": just_fits}, namespaced=False) == []
    too_big = {"k": "x" * (256 * 1024)}
    errs = validate_object_meta({"name": "a", "annotations": too_big}, namespaced=False)
    assert [str(e) for e in errs] == ["metadata.annotations: Too long: may not be more than 262144 bytes"]


def test_finalizers():
    errs = validate_object_meta({"name": "a", "finalizers": ["a/b/c", "orphan", "foregroundDeletion"]},
                                namespaced=False)
    assert errs[0] == _err("FieldValueInvalid", "metadata.finalizers", "a/b/c", LABEL_KEY_MSG)
    assert errs[1] == _err("FieldValueInvalid", "metadata.finalizers", ["a/b/c", "orphan", "foregroundDeletion"],
                           "finalizer orphan and foregroundDeletion cannot be both set")
    assert len(errs) == 2


def test_owner_references():
    refs = [
        {"apiVersion": "", "kind": "", "name": "", "uid": ""},
        {"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "1"},
        {"apiVersion": "g/v1", "kind": "K", "name": "one", "uid": "2", "controller": True},
        {"apiVersion": "g/v1", "kind": "K", "name": "two", "uid": "3", "controller": True},
    ]
    errs = validate_object_meta({"name": "a", "ownerReferences": refs}, namespaced=False)
    p = "metadata.ownerReferences"
    assert errs == [
        _err("FieldValueInvalid", f"{p}.apiVersion", "", "version must not be empty"),
        _err("FieldValueInvalid", f"{p}.kind", "", "must not be empty"),
        _err("FieldValueInvalid", f"{p}.name", "", "must not be empty"),
        _err("FieldValueInvalid", f"{p}.uid", "", "must not be empty"),
        _err("FieldValueInvalid", p, refs[1], "/v1, Kind=Event is disallowed from being an owner"),
        _err("FieldValueInvalid", p, refs,
             'Only one reference can have Controller set to true. Found "true" in references for K/one and K/two'),
    ]
    # A malformed apiVersion has no version either.
    errs = validate_object_meta({"name": "a", "ownerReferences": [
        {"apiVersion": "a/b/c", "kind": "K", "name": "n", "uid": "u"}]}, namespaced=False)
    assert [str(e) for e in errs] == [f'{p}.apiVersion: Invalid value: "a/b/c": version must not be empty']


def test_managed_fields():
    entries = [{"manager": "m", "operation": "Apply"},
               {"manager": "x" * 129, "operation": "Patch", "fieldsType": "FieldsV2", "subresource": "s" * 257},
               {"manager": "a\x07", "operation": "Update"}]
    errs = validate_object_meta({"name": "a", "managedFields": entries}, namespaced=False)
    p = "metadata.managedFields"
    assert [str(e) for e in errs] == [
        f'{p}[1].operation: Invalid value: "Patch": must be `Apply` or `Update`',
        f'{p}[1].fieldsType: Invalid value: "FieldsV2": must be `FieldsV1`',
        f"{p}[1].manager: Too long: may not be more than 128 bytes",
        f"{p}[1].subresource: Too long: may not be more than 256 bytes",
    ] + [str(errs[4])]
    assert errs[4] == _err("FieldValueInvalid", f"{p}[2].manager", "a\x07",
                           "invalid character U+0007 (at position 1)")


OLD = {"name": "a", "namespace": "ns", "uid": "u1", "resourceVersion": "5", "generation": 3,
       "creationTimestamp": "2024-01-01T00:00:00Z"}


def test_object_meta_update_ok():
    new = dict(OLD, labels={"x": "y"}, finalizers=["example.com/f"])
    assert validate_object_meta_update(new, OLD) == []


def test_object_meta_update_immutable_fields():
    new = {"name": "b", "namespace": "other", "uid": "u2", "resourceVersion": "5", "generation": 3,
           "creationTimestamp": "2025-01-01T00:00:00Z", "deletionTimestamp": "2025-01-02T00:00:00Z",
           "deletionGracePeriodSeconds": 30}
    errs = validate_object_meta_update(new, OLD)
    assert [str(e) for e in errs] == [
        'metadata.name: Invalid value: "b": field is immutable',
        'metadata.namespace: Invalid value: "other": field is immutable',
        'metadata.uid: Invalid value: "u2": field is immutable',
        'metadata.creationTimestamp: Invalid value: "2025-01-01T00:00:00Z": field is immutable',
        'metadata.deletionTimestamp: Invalid value: "2025-01-02T00:00:00Z": field is immutable',
        "metadata.deletionGracePeriodSeconds: Invalid value: 30: field is immutable",
    ]
    # Removing a set deletion timestamp is a change too (null in the message).
    old = dict(OLD, deletionTimestamp="2025-01-02T00:00:00Z", deletionGracePeriodSeconds=0)
    new = dict(OLD, deletionGracePeriodSeconds=0)
    assert [str(e) for e in validate_object_meta_update(new, old)] == [
        "metadata.deletionTimestamp: Invalid value: null: field is immutable"]


def test_object_meta_update_resource_version_generation_finalizers():
    new = dict(OLD, resourceVersion="", generation=2)
    assert [str(e) for e in validate_object_meta_update(new, OLD)] == [
        'metadata.resourceVersion: Invalid value: "": must be specified for an update',
        "metadata.generation: Invalid value: 2: must not be decremented",
    ]
    deleting = dict(OLD, deletionTimestamp="2025-01-02T00:00:00Z", finalizers=["a"])
    new = dict(deleting, finalizers=["z", "a", "b"])
    assert [str(e) for e in validate_object_meta_update(new, deleting)] == [
        "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, "
        'found new finalizers []string{"b", "z"}']
    # Removing finalizers while deleting is fine; adding them when not deleting too.
    assert validate_object_meta_update(dict(deleting, finalizers=[]), deleting) == []
    assert validate_object_meta_update(dict(OLD, finalizers=["x"]), OLD) == []


def test_object_meta_update_revalidates_labels_and_annotations():
    new = dict(OLD, labels={"ok": "-bad"}, annotations={"/x": "y"})
    assert [str(e) for e in validate_object_meta_update(new, OLD)] == [
        f'metadata.labels: Invalid value: "-bad": {LABEL_VALUE_MSG}',
        'metadata.annotations: Invalid value: "/x": prefix part must be non-empty',
    ]
