"""Label and field selectors: kube's grammar, matching and exact error messages."""
from __future__ import annotations

import pytest

from extserver.machinery.selectors import FieldSelector, LabelSelector, Requirement

LABEL_KEY_MSG = (
    "a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix "
    "and '/' (e.g. 'example.com/MyName')"
)
NAME_PART_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
    "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation "
    "is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
    "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
    "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
BINARY_OPS = "in, notin, =, ==, !=, gt, lt"
GT_INT = "for 'Gt', 'Lt' operators, the value must be an integer"


# --- label selectors: parsing and String() ---------------------------------------------

@pytest.mark.parametrize("selector,canonical", [
    ("", ""),
    ("x=a,y=b,z=c", "x=a,y=b,z=c"),
    ("z=c,x=a", "x=a,z=c"),  # sorted by key
    ("x==a", "x==a"),
    ("x!=a,y=b", "x!=a,y=b"),
    ("x=,z= ", "x=,z="),
    ("x= ,z= ", "x=,z="),
    ("x", "x"),
    ("!x", "!x"),
    (" ! x ", "!x"),
    ("x>1", "x>1"),
    ("x<0", "x<0"),
    ("x in (abc,def)", "x in (abc,def)"),
    ("x in (def,abc)", "x in (abc,def)"),  # values sorted on output
    ("x in ( a , b )", "x in (a,b)"),
    ("x\tin\t(a)\n", "x in (a)"),
    ("x in (a,)", "x in (,a)"),
    ("x in (,a)", "x in (,a)"),
    ("x in (a,,b)", "x in (,a,b)"),
    ("x in (a,a)", "x in (a)"),
    ("x notin ()", "x notin ()"),
    ("x notin (abc,,def),bar,z in (),w", "bar,w,x notin (,abc,def),z in ()"),
    ("in in (in)", "in in (in)"),  # keywords are identifiers where values are expected
    ("notin=in", "notin=in"),
    ("example.com/app=web", "example.com/app=web"),
    ("a=b,!c,d notin (e)", "a=b,!c,d notin (e)"),
])
def test_label_parse_valid(selector, canonical):
    assert str(LabelSelector.parse(selector)) == canonical


@pytest.mark.parametrize("selector,message", [
    ("a b", f"unable to parse requirement: found 'b', expected: {BINARY_OPS}"),
    ("x!", f"unable to parse requirement: found '!', expected: {BINARY_OPS}"),
    ("x in (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'"),
    ("x in (a", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("x in a", "unable to parse requirement: found 'a' expected: '('"),
    ("x in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier"),
    ("x in (a,=)", "unable to parse requirement: found '=', expected: ',', or identifier"),
    ("x=(a)", "unable to parse requirement: found '(', expected: identifier"),
    ("!", "unable to parse requirement: found '', expected: identifier"),
    ("!=a", "found '!=', expected: !, identifier, or 'end of string'"),
    ("! =a", "unable to parse requirement: found '=', expected: identifier"),
    ("x=a,", "found '', expected: identifier after ','"),
    ("x=a,,y", "found ',', expected: identifier after ','"),
    (",x", "found ',', expected: !, identifier, or 'end of string'"),
    ("(", "found '(', expected: !, identifier, or 'end of string'"),
    ("x=a b", "found 'b', expected: ',' or 'end of string'"),
    ("x==a==b", "found '==', expected: ',' or 'end of string'"),
    ("x=a=b", "found '=', expected: ',' or 'end of string'"),
    ("!x=a", "found '=', expected: ',' or 'end of string'"),
    ("x>a", f'unable to parse requirement: values[0]: Invalid value: "a": {GT_INT}'),
    ("x<1.5", f'unable to parse requirement: values[0]: Invalid value: "1.5": {GT_INT}'),
    ("x>99999999999999999999", f'unable to parse requirement: values[0]: Invalid value: "99999999999999999999": {GT_INT}'),
    ("x>-3", f'unable to parse requirement: values[0][x]: Invalid value: "-3": {LABEL_VALUE_MSG}'),
    ("a/b/c=d", f'unable to parse requirement: <nil>: Invalid value: "a/b/c": {LABEL_KEY_MSG}'),
    ("-x", f'unable to parse requirement: <nil>: Invalid value: "-x": {NAME_PART_MSG}'),
    ("x=a$b", f'unable to parse requirement: values[0][x]: Invalid value: "a$b": {LABEL_VALUE_MSG}'),
    ("x in (b,a$)", f'unable to parse requirement: values[0][x]: Invalid value: "a$": {LABEL_VALUE_MSG}'),
    ("x=" + "a" * 64, 'unable to parse requirement: values[0][x]: Invalid value: "' + "a" * 64
     + '": must be no more than 63 bytes'),
    ("x in (-a,-b)", "unable to parse requirement: ["
     f'values[0][x]: Invalid value: "-a": {LABEL_VALUE_MSG}, '
     f'values[1][x]: Invalid value: "-b": {LABEL_VALUE_MSG}]'),
])
def test_label_parse_errors(selector, message):
    with pytest.raises(ValueError) as e:
        LabelSelector.parse(selector)
    assert str(e.value) == message


# --- label selectors: matching ---------------------------------------------------------

@pytest.mark.parametrize("selector,labels,expected", [
    ("", {}, True),
    ("", {"a": "b"}, True),
    ("x=a", {"x": "a"}, True),
    ("x==a", {"x": "a", "y": "b"}, True),
    ("x=a", {"x": "b"}, False),
    ("x=a", {}, False),
    ("x=", {"x": ""}, True),
    ("x=", {}, False),
    ("x!=a", {}, True),
    ("x!=a", {"x": "b"}, True),
    ("x!=a", {"x": "a"}, False),
    ("x in (a,b)", {"x": "b"}, True),
    ("x in (a,b)", {"x": "c"}, False),
    ("x in (a,b)", {}, False),
    ("x notin (a,b)", {}, True),
    ("x notin (a,b)", {"x": "a"}, False),
    ("x notin (a,b)", {"x": "c"}, True),
    ("x", {"x": ""}, True),
    ("x", {"y": "x"}, False),
    ("!x", {}, True),
    ("!x", {"x": "1"}, False),
    ("x>5", {"x": "6"}, True),
    ("x>5", {"x": "5"}, False),
    ("x>5", {"x": "abc"}, False),
    ("x>5", {}, False),
    ("x<5", {"x": "-1"}, True),
    ("x<5", {"x": "05"}, False),
    ("x<5", {"x": "04"}, True),
    ("x=a,y in (1,2),!z", {"x": "a", "y": "2"}, True),
    ("x=a,y in (1,2),!z", {"x": "a", "y": "2", "z": ""}, False),
])
def test_label_matches(selector, labels, expected):
    assert LabelSelector.parse(selector).matches(labels) is expected


def test_label_empty_everything_nothing():
    assert LabelSelector.parse("").empty
    assert LabelSelector.everything().empty
    assert not LabelSelector.parse("x").empty
    nothing = LabelSelector.nothing()
    assert not nothing.empty
    assert not nothing.matches({})
    assert not nothing.matches({"a": "b"})
    assert str(nothing) == ""
    assert LabelSelector.everything().matches(None)


def test_label_requires_exact_match():
    sel = LabelSelector.parse("x=a,y in (b),z in (c,d),w!=e,v==f")
    assert sel.requires_exact_match("x") == "a"
    assert sel.requires_exact_match("y") == "b"
    assert sel.requires_exact_match("v") == "f"
    assert sel.requires_exact_match("z") is None
    assert sel.requires_exact_match("w") is None
    assert sel.requires_exact_match("missing") is None


def test_label_from_set():
    sel = LabelSelector.from_set({"b": "2", "a": "1"})
    assert str(sel) == "a=1,b=2"
    assert sel.matches({"a": "1", "b": "2", "c": "3"})
    assert not sel.matches({"a": "1"})
    assert LabelSelector.from_set({}).empty


# --- metav1.LabelSelector --------------------------------------------------------------

def test_label_selector_dict():
    assert not LabelSelector.from_label_selector_dict(None).matches({})
    assert LabelSelector.from_label_selector_dict({}).empty
    assert LabelSelector.from_label_selector_dict({"matchLabels": {}, "matchExpressions": []}).empty
    sel = LabelSelector.from_label_selector_dict({
        "matchLabels": {"a": "b"},
        "matchExpressions": [
            {"key": "c", "operator": "In", "values": ["e", "d"]},
            {"key": "f", "operator": "DoesNotExist"},
            {"key": "g", "operator": "Exists", "values": []},
            {"key": "h", "operator": "NotIn", "values": ["x"]},
        ],
    })
    assert str(sel) == "a=b,c in (d,e),!f,g,h notin (x)"
    assert sel.matches({"a": "b", "c": "d", "g": ""})
    assert not sel.matches({"a": "b", "c": "d", "g": "", "f": "1"})
    assert not sel.matches({"a": "b", "c": "d", "g": "", "h": "x"})


@pytest.mark.parametrize("d,message", [
    ({"matchExpressions": [{"key": "a", "operator": "Foo"}]}, '"Foo" is not a valid label selector operator'),
    ({"matchExpressions": [{"key": "a", "operator": "In"}]},
     "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty"),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]},
     "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty"),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
     'values: Invalid value: ["x"]: values set must be empty for exists and does not exist'),
    ({"matchLabels": {"a b": "c"}}, f'key: Invalid value: "a b": {NAME_PART_MSG}'),
    ({"matchLabels": {"": "c"}}, f'key: Invalid value: "": name part must be non-empty; {NAME_PART_MSG}'),
    ({"matchLabels": {"a": "-"}}, f'values[0][a]: Invalid value: "-": {LABEL_VALUE_MSG}'),
    ({"matchExpressions": [{"key": "-", "operator": "In"}]},
     f'[key: Invalid value: "-": {NAME_PART_MSG}, '
     "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty]"),
])
def test_label_selector_dict_errors(d, message):
    with pytest.raises(ValueError) as e:
        LabelSelector.from_label_selector_dict(d)
    assert str(e.value) == message


def test_requirement_new_exact_and_gt_counts():
    with pytest.raises(ValueError) as e:
        Requirement.new("a", "=", ["x", "y"])
    assert str(e.value) == 'values: Invalid value: ["x","y"]: exact-match compatibility requires one single value'
    with pytest.raises(ValueError) as e:
        Requirement.new("a", "gt", [])
    assert str(e.value) == "values: Invalid value: []: for 'Gt', 'Lt' operators, exactly one value is required"
    assert Requirement.new("a", "lt", ["7"]).matches({"a": "6"})
    # Lists are JSON as Go marshals them (HTML characters escaped); duplicates are not merged.
    with pytest.raises(ValueError) as e:
        Requirement.new("a", "==", ["<", ">"])
    assert str(e.value) == (
        '[values: Invalid value: ["\\u003c","\\u003e"]: exact-match compatibility requires one single value, '
        f'values[0][a]: Invalid value: "<": {LABEL_VALUE_MSG}, values[1][a]: Invalid value: ">": {LABEL_VALUE_MSG}]')


# --- field selectors ----------------------------------------------------------------------

@pytest.mark.parametrize("selector,requirements,canonical", [
    ("", (), ""),
    ("metadata.name=foo", (("metadata.name", "=", "foo"),), "metadata.name=foo"),
    ("metadata.name==foo", (("metadata.name", "=", "foo"),), "metadata.name=foo"),
    ("a!=b,c=d", (("a", "!=", "b"), ("c", "=", "d")), "a!=b,c=d"),
    ("b=1,a=2", (("a", "=", "2"), ("b", "=", "1")), "a=2,b=1"),  # terms sorted
    ("a=", (("a", "=", ""),), "a="),
    ("a=b,,c=d", (("a", "=", "b"), ("c", "=", "d")), "a=b,c=d"),
    ("a=!b", (("a", "=", "!b"),), "a=!b"),
    ("a==b", (("a", "=", "b"),), "a=b"),
    (r"a=x\,y\=z\\w", (("a", "=", r"x,y=z\w"),), r"a=x\,y\=z\\w"),
    (r"a=x\,y,b=1", (("a", "=", "x,y"), ("b", "=", "1")), r"a=x\,y,b=1"),
    ("spec.x = y", (("spec.x ", "=", " y"),), "spec.x = y"),  # no trimming
])
def test_field_parse(selector, requirements, canonical):
    sel = FieldSelector.parse(selector)
    assert sel.requirements == requirements
    assert str(sel) == canonical
    assert FieldSelector.parse(str(sel)).requirements == requirements


@pytest.mark.parametrize("selector,message", [
    ("abc", "invalid selector: 'abc'; can't understand 'abc'"),
    ("a=b,abc", "invalid selector: 'a=b,abc'; can't understand 'abc'"),
    ("a=b=c", "invalid field selector: unescaped character in value: 61"),
    ("a!==b", "invalid field selector: unescaped character in value: 61"),
    (r"a=b\x", r"invalid field selector: invalid escape sequence: \x"),
    ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
])
def test_field_parse_errors(selector, message):
    with pytest.raises(ValueError) as e:
        FieldSelector.parse(selector)
    assert str(e.value) == message


@pytest.mark.parametrize("selector,fields,expected", [
    ("", {}, True),
    ("metadata.name=foo", {"metadata.name": "foo", "metadata.namespace": "ns"}, True),
    ("metadata.name=foo", {"metadata.name": "bar"}, False),
    ("metadata.name!=foo", {"metadata.name": "bar"}, True),
    ("metadata.name!=foo", {"metadata.name": "foo"}, False),
    ("a=", {}, True),  # a missing field reads as ""
    ("a!=x", {}, True),
    ("a!=", {}, False),
    (r"a=x\,y", {"a": "x,y"}, True),
    ("a=1,b!=2", {"a": "1", "b": "3"}, True),
    ("a=1,b!=2", {"a": "1", "b": "2"}, False),
])
def test_field_matches(selector, fields, expected):
    assert FieldSelector.parse(selector).matches(fields) is expected


def test_field_empty_and_single_value():
    assert FieldSelector.parse("").empty
    assert FieldSelector.everything().empty
    sel = FieldSelector.parse("metadata.name=foo,metadata.namespace!=x")
    assert not sel.empty
    assert sel.single_value("metadata.name") == "foo"
    assert sel.single_value("metadata.namespace") is None
    assert sel.single_value("spec.x") is None
    assert FieldSelector.parse("metadata.name==a,metadata.name=b").single_value("metadata.name") == "a"


def test_field_check_supported():
    FieldSelector.parse("metadata.name=a,metadata.namespace=b").check_supported()
    with pytest.raises(ValueError) as e:
        FieldSelector.parse("metadata.name=a,spec.x=1").check_supported()
    assert str(e.value) == '"spec.x" is not a known field selector: only "metadata.name", "metadata.namespace"'

    supported = {"metadata.name", "metadata.namespace", "spec.x"}
    FieldSelector.parse("spec.x!=1,metadata.name=a").check_supported(supported)
    with pytest.raises(ValueError) as e:
        FieldSelector.parse("status.y=1,spec.x=2").check_supported(supported)
    assert str(e.value) == "field label not supported: status.y"
    # The first unsupported field in kube's (sorted) order is reported.
    with pytest.raises(ValueError) as e:
        FieldSelector.parse("z=1,y=2").check_supported(set())
    assert str(e.value) == "field label not supported: y"
