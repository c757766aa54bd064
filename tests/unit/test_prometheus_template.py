"""The Go text/template subset of prometheus-adapter's templates (``<<`` ``>>``): outputs and
error texts as Go's text/template gives them for the same template and data."""
from __future__ import annotations

import pytest

from extserver.providers.prometheus.template import Struct, Template, TemplateError, go_print

ARGS = Struct("naming.queryTemplateArgs", {
    "Series": "http_requests_total", "LabelMatchers": 'namespace="ns",pod=~"a|b"',
    "LabelValuesByName": {"pod": "a|b", "namespace": "ns"}, "GroupBy": "pod,container",
    "GroupBySlice": ["pod", "container"]})


def run(text: str, data=ARGS, name: str = "metrics-query") -> str:
    return Template.parse(name, text).execute(data)


def err(text: str, data=ARGS) -> str:
    with pytest.raises(TemplateError) as e:
        run(text, data)
    return str(e.value)


@pytest.mark.parametrize("text, want", [
    # the documented examples
    ('sum(rate(<<.Series>>{<<.LabelMatchers>>,container!="POD"}[2m])) by (<<.GroupBy>>)',
     'sum(rate(http_requests_total{namespace="ns",pod=~"a|b",container!="POD"}[2m])) by (pod,container)'),
    ('sum by (<<.GroupBy>>) (\n  irate (\n    x{<<.LabelMatchers>>}[4m]\n  )\n)\n',
     'sum by (pod,container) (\n  irate (\n    x{namespace="ns",pod=~"a|b"}[4m]\n  )\n)\n'),
    ('<<index .LabelValuesByName "pod">>', "a|b"),
    ('<<index .LabelValuesByName "missing">>|', "|"),  # index of a missing key: the zero value
    ("<<.LabelValuesByName.pod>> <<.LabelValuesByName.nope>>", "a|b <no value>"),  # field of a map
    ("<<.GroupBySlice>> <<.LabelValuesByName>>", "[pod container] map[namespace:ns pod:a|b]"),
    # range over a map is in key order; over a slice with index and element
    ('<<range $k, $v := .LabelValuesByName>><<$k>>=~"<<$v>>",<<end>>', 'namespace=~"ns",pod=~"a|b",'),
    ("<<range $i, $g := .GroupBySlice>><<if $i>>,<<end>><<$g>><<end>>", "pod,container"),
    ("<<range .GroupBySlice>>[<<.>>]<<else>>none<<end>>", "[pod][container]"),
    # trim markers and comments
    ("a  <<- .Series ->>  b", "ahttp_requests_totalb"),
    ("x <</* a comment */>> y", "x  y"),
    ("x <<- /* trimmed */ ->> y", "xy"),
    # conditionals, comparisons, boolean functions
    ('<<if eq .GroupBy "pod,container">>yes<<else>>no<<end>>', "yes"),
    ('<<if ne .Series "x">>a<<else if .Series>>b<<end>>', "a"),
    ('<<with .LabelValuesByName.pod>>pod=~"<<.>>"<<end>>', 'pod=~"a|b"'),
    ("<<with .LabelValuesByName.nope>>x<<else>>empty<<end>>", "empty"),
    ("<<len .GroupBySlice>> <<len .Series>>", "2 19"),
    ('<<printf "%s{%s}" .Series .LabelMatchers>>', 'http_requests_total{namespace="ns",pod=~"a|b"}'),
    ('<<printf "%q %d %v" .Series 3 .GroupBySlice>>', '"http_requests_total" 3 [pod container]'),
    ('<<.Series | printf "%s_rate">>', "http_requests_total_rate"),
    ('<<print "a" 1 2 "b">>', "a1 2b"),
    ("<<$s := .Series>><<$s>>", "http_requests_total"),
    ('<<$x := "a">><<$x = "b">><<$x>>', "b"),
    ("<<slice .Series 0 4>>", "http"),
    ("<<index .GroupBySlice 1>>", "container"),
    ('<<urlquery "a b&c">>', "a+b%26c"),
    ("<<html \"<a href='x'>\">>", "&lt;a href=&#39;x&#39;&gt;"),
    ("{{.Series}} stays text", "{{.Series}} stays text"),
])
def test_execute(text, want):
    assert run(text) == want


def test_numbers_print_as_go_does():
    assert run("<<1.5>> <<1e6>> <<0x10>> <<true>> <<'a'>>") == "1.5 1e+06 16 true 97"
    assert go_print(123456.0) == "123456" and go_print(1234567.0) == "1.234567e+06" and go_print(1e-5) == "1e-05"


def test_short_circuit_and_or_return_the_deciding_value():
    assert run('<<and .Series "" "never">>|<<or "" .GroupBy>>') == "|pod,container"


def test_break_and_continue_in_range():
    assert run("<<range .GroupBySlice>><<if eq . \"container\">><<break>><<end>><<.>><<end>>") == "pod"
    assert run("<<range .GroupBySlice>><<if eq . \"pod\">><<continue>><<end>><<.>><<end>>") == "container"


def test_resource_template_with_group_resource():
    gr = Struct("schema.GroupResource", {"Group": "apps", "Resource": "deployment"})
    assert run("kube_<<.Group>>_<<.Resource>>", gr, "resource-label") == "kube_apps_deployment"


@pytest.mark.parametrize("text, want", [
    ("<<.Series", "template: metrics-query:1: unclosed action"),
    ("sum(<<.Series}>>)", "template: metrics-query:1: unrecognized character in action: U+007D '}'"),
    ("<<sum .Series>>", 'template: metrics-query:1: function "sum" not defined'),
    ("<<end>>", "template: metrics-query:1: unexpected {{end}}"),
    ("<<if .Series>>x", "template: metrics-query:1: unexpected EOF"),
    ("<<$x>>", 'template: metrics-query:1: undefined variable "$x"'),
    ("a\n<<break>>", "template: metrics-query:2: {{break}} outside {{range}}"),
    ('<<"unterminated>>', "template: metrics-query:1: unterminated quoted string"),
    ("<</* never closed >>", "template: metrics-query:1: unclosed comment"),
    ('<<define "x">><<end>>', "template: metrics-query:1: {{define}} is not supported in prometheus-adapter templates"),
])
def test_parse_errors(text, want):
    with pytest.raises(TemplateError) as e:
        Template.parse("metrics-query", text)
    assert str(e.value) == want


def test_execution_errors():
    assert err("x <<.Serie>>") == ('template: metrics-query:1:4: executing "metrics-query" at <.Serie>: '
                                   "can't evaluate field Serie in type naming.queryTemplateArgs")
    assert err("\n  <<.Series.Name>>") == ('template: metrics-query:2:4: executing "metrics-query" at <.Series.Name>: '
                                          "can't evaluate field Name in type string")
    assert "error calling index: index out of range: 5" in err("<<index .GroupBySlice 5>>")
    assert "incompatible types for comparison" in err('<<eq .Series 1>>')
    assert "can't give argument to non-function .Series" in err("<<.Series 1>>")
    assert "can't evaluate field Nothing" in err("<<range .Nothing>>x<<end>>")
    assert "can't evaluate field Nada" in err("<<if and .Series (not .Nada)>>1<<end>>")
