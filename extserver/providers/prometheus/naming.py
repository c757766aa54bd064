"""From a rule to Prometheus and back: prometheus-adapter's ``pkg/naming``.

- :class:`ResourceConverter`: which series labels name which Kubernetes resources
  (``resources.overrides`` and the ``resources.template`` run backwards as a regex).
- :class:`MetricsQuery`: the ``metricsQuery`` template filled with ``Series``,
  ``LabelMatchers``, ``LabelValuesByName``, ``GroupBy``, ``GroupBySlice`` for a request
  (object names, namespace, ``metricLabelSelector``).
- :class:`MetricNamer`: one rule — its series query, filters, name mapping and query.

Label matchers are written as upstream writes them (Go's ``%q`` quoting, ``=~`` joined with
``|`` for several names), so a query reads the same as prometheus-adapter's."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ...machinery.selectors import (DOES_NOT_EXIST, DOUBLE_EQUALS, EQUALS, EXISTS, GREATER_THAN, IN,
                                    LESS_THAN, NOT_EQUALS, NOT_IN, LabelSelector)
from ...machinery.validation import go_quote
from ..mapper import ResourceKind, ResourceMapper
from ..metrics_api import GroupResource
from .config import (RESOURCE_LABEL_TEMPLATE, DiscoveryRule, NameMapping, RegexFilter, ResourceMapping,
                     group_resource_arg, parse_metrics_query)
from .template import Struct, Template

NAMESPACES = GroupResource("", "namespaces")
NODES = GroupResource("", "nodes")
PERSISTENT_VOLUMES = GroupResource("", "persistentvolumes")
PODS = GroupResource("", "pods")

# pkg/naming/errors.go
ERR_UNSUPPORTED_OPERATOR = "operator not supported by prometheus"
ERR_MALFORMED_QUERY = "operator requires values"
ERR_QUERY_UNSUPPORTED_VALUES = "operator does not support values"
ERR_LABEL_NOT_SPECIFIED = "label not specified"

_GROUP_SANITIZER = str.maketrans({".": "_", "-": "_"})


class QueryBuildError(ValueError):
    pass


def label_eq(label: str, value: str) -> str:
    return f"{label}={go_quote(value)}"


def label_neq(label: str, value: str) -> str:
    return f"{label}!={go_quote(value)}"


def label_matches(label: str, value: str) -> str:
    return f"{label}=~{go_quote(value)}"


def label_not_matches(label: str, value: str) -> str:
    return f"{label}!~{go_quote(value)}"


# ---------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------
class ReMatcher:
    """A ``seriesFilters`` entry: ``is`` matches, ``isNot`` must not match."""

    def __init__(self, regex: re.Pattern, positive: bool):
        self.regex = regex
        self.positive = positive

    @classmethod
    def from_config(cls, f: RegexFilter) -> "ReMatcher":
        if f.is_ and f.is_not:
            raise ValueError(f"cannot have both an `is` ({go_quote(f.is_)}) and `isNot` ({go_quote(f.is_not)}) "
                             "expression in a single filter")
        if not f.is_ and not f.is_not:
            raise ValueError("must have either an `is` or `isNot` expression in a filter")
        raw = f.is_ or f.is_not
        try:
            return cls(re.compile(raw), bool(f.is_))
        except re.error as e:
            raise ValueError(f"unable to compile series filter {go_quote(raw)}: {e}") from None

    def matches(self, s: str) -> bool:
        return (self.regex.search(s) is not None) == self.positive


def name_as_default(name: NameMapping) -> str:
    """``as``, or the default: ``$0`` without capture groups, ``$1`` with one."""
    if name.as_:
        return name.as_
    groups = re.compile(name.matches or ".*").groups
    if groups == 0:
        return "$0"
    if groups == 1:
        return "$1"
    raise ValueError(f"must specify an 'as' value for name matcher {go_quote(name.matches)}")


_EXPAND_NAME = re.compile(r"[A-Za-z0-9_]+")


def go_expand(template: str, m: re.Match) -> str:
    """``regexp.Regexp.ExpandString``: ``$1``, ``${1}``, ``$name``, ``${name}``, ``$$``; a
    name taken greedily (``$1x`` is the group named ``1x``), an unknown one expands to ""."""
    out, i = [], 0
    while i < len(template):
        j = template.find("$", i)
        if j < 0:
            out.append(template[i:])
            break
        out.append(template[i:j])
        rest = template[j + 1:]
        if rest.startswith("$"):
            out.append("$")
            i = j + 2
            continue
        if rest.startswith("{"):
            close = rest.find("}")
            name = rest[1:close] if close > 0 else ""
            if close < 0 or not _EXPAND_NAME.fullmatch(name):
                out.append("$")  # not a valid reference: the $ is kept literally
                i = j + 1
                continue
            i = j + 1 + close + 1
        else:
            nm = _EXPAND_NAME.match(rest)
            if not nm:
                out.append("$")
                i = j + 1
                continue
            name = nm.group(0)
            i = j + 1 + nm.end()
        if name.isdigit():
            k = int(name)
            if k <= (m.re.groups):
                out.append(m.group(k) or "")
        elif name in m.re.groupindex:
            out.append(m.group(name) or "")
    return "".join(out)


# ---------------------------------------------------------------------------------------
# Resources <-> labels
# ---------------------------------------------------------------------------------------
def label_template_regex(text: str) -> tuple[Template, re.Pattern]:
    """The ``resources.template`` and the regex that reads group and resource back out of a
    label (the template run with capture groups in place of the values)."""
    t = Template.parse(RESOURCE_LABEL_TEMPLATE, text)
    raw = t.execute(group_resource_arg("(?P<group>.+?)", "(?P<resource>.+?)"))
    if not raw:
        raise ValueError("unable to convert label template to matcher: empty template")
    try:
        rx = re.compile("^" + raw + "$")
    except re.error as e:
        raise ValueError(f"unable to convert label template to matcher: {e}") from None
    if "resource" not in rx.groupindex:
        raise ValueError("must include at least `{{.Resource}}` in the label template")
    return t, rx


def guess_plural(singular: str) -> str:
    """``meta.UnsafeGuessKindToResource``'s plural of a lower-cased kind."""
    s = singular.lower()
    if s.endswith("s"):
        return s + "es"
    if s.endswith("y"):
        return s[:-1] + "ies"
    return s + "s"


def kind_for_override(mapper: ResourceMapper, group: str, resource: str) -> ResourceKind:
    """The kind an override names. One the mapper does not know (a CRD: the cluster's
    discovery would know it) is added to it with kube's plural guess, so that requests
    for ``brands.cheese.io`` and ``brand.cheese.io`` find the rule's metrics."""
    kind = mapper.lookup(GroupResource(group, resource))
    if kind is not None:
        return kind
    r = resource.lower()
    singular = r[:-1] if r.endswith("s") else r
    plural = r if r.endswith("s") else guess_plural(r)
    kind = ResourceKind(group, "v1", singular[:1].upper() + singular[1:], plural, singular, True)
    mapper.add(kind)
    return kind


class ResourceConverter:
    def __init__(self, mapping: ResourceMapping, mapper: ResourceMapper):
        self.mapper = mapper
        self.label_to_resource: dict[str, GroupResource] = {}
        self.resource_to_label: dict[GroupResource, str] = {}
        self.template: Template | None = None
        self.extractor: re.Pattern | None = None
        if mapping.template:
            self.template, self.extractor = label_template_regex(mapping.template)
        for label, gr in mapping.overrides.items():
            if not gr.resource:
                raise ValueError(f"overrides.{label}: unable to normalize group-resource: no resource given")
            canonical = kind_for_override(mapper, gr.group, gr.resource).group_resource
            self.label_to_resource[label] = canonical
            self.resource_to_label[canonical] = label

    def label_for_resource(self, gr: GroupResource) -> str:
        lbl = self.resource_to_label.get(gr)
        if lbl is not None:
            return lbl
        if self.template is None:
            raise QueryBuildError(f"unable to convert resource {gr} into label: "
                                  "no generic resource label form specified for this metric")
        kind = self.mapper.lookup(gr)
        singular = kind.singular if kind is not None else gr.resource
        lbl = self.template.execute(group_resource_arg(gr.group.translate(_GROUP_SANITIZER), singular))
        if not lbl:
            raise QueryBuildError(f"unable to convert resource {gr} into label: empty label produced by label template")
        self.resource_to_label[gr] = lbl
        self.label_to_resource[lbl] = gr
        return lbl

    def resources_for_series(self, labels: dict[str, str]) -> tuple[list[GroupResource], bool]:
        """The resources the series' labels name, and whether the series is namespaced."""
        out: list[GroupResource] = []
        namespaced = False
        for lbl in labels:
            gr = self.label_to_resource.get(lbl)
            if gr is None and self.extractor is not None:
                m = self.extractor.match(lbl)
                if m:
                    group = m.group("group") if "group" in m.re.groupindex else ""
                    kind = self.mapper.lookup(GroupResource(group, m.group("resource")))
                    if kind is not None:  # upstream skips labels its mapper cannot map
                        gr = kind.group_resource
                        self.label_to_resource[lbl] = gr
            if gr is not None:
                out.append(gr)
            # as upstream: any label other than namespace/node/PV makes the series namespaced
            if gr not in (NAMESPACES, NODES, PERSISTENT_VOLUMES):
                namespaced = True
        return out, namespaced


# ---------------------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Part:
    label: str
    values: list[str]
    op: str


def _matcher(op: str, values: list[str]):
    n = len(values)
    if n == 0:
        if op == EXISTS:
            return label_neq
        if op == DOES_NOT_EXIST:
            return label_eq
        raise QueryBuildError(ERR_MALFORMED_QUERY)
    if n == 1:
        return {EQUALS: label_eq, DOUBLE_EQUALS: label_eq, NOT_EQUALS: label_neq, IN: label_matches,
                EXISTS: label_matches, DOES_NOT_EXIST: label_not_matches, NOT_IN: label_not_matches}[op]
    if op in (EQUALS, DOUBLE_EQUALS, IN, EXISTS):
        return label_matches
    return label_not_matches


def _target(op: str, values: list[str]) -> str:
    if not values:
        if op in (EXISTS, DOES_NOT_EXIST):
            return ""
        raise QueryBuildError(ERR_MALFORMED_QUERY)
    if op in (EXISTS, DOES_NOT_EXIST):
        raise QueryBuildError(ERR_QUERY_UNSUPPORTED_VALUES)
    return "|".join(values)


def _process(parts: list[_Part]) -> tuple[list[str], dict[str, str]]:
    exprs: list[str] = []
    by_name: dict[str, str] = {}
    for p in parts:
        if not p.label:
            raise QueryBuildError(ERR_LABEL_NOT_SPECIFIED)
        if p.op in (GREATER_THAN, LESS_THAN):
            raise QueryBuildError(ERR_UNSUPPORTED_OPERATOR)
        matcher = _matcher(p.op, p.values)
        exprs.append(matcher(p.label, _target(p.op, p.values)))
        by_name[p.label] = "|".join(p.values)
    return exprs, by_name


def _selector_parts(sel: LabelSelector | None) -> list[_Part]:
    if sel is None:
        return []
    return [_Part(r.key, sorted(r.values), r.operator) for r in sel.requirements]


class MetricsQuery:
    def __init__(self, text: str, converter: ResourceConverter, namespaced: bool = True):
        self.template = parse_metrics_query(text)
        self.converter = converter
        self.namespaced = namespaced

    def _render(self, series: str, exprs: list[str], by_name: dict[str, str], group_by: list[str] | str,
                group_by_slice: list[str]) -> str:
        args = Struct("naming.queryTemplateArgs", {
            "Series": series, "LabelMatchers": ",".join(exprs), "LabelValuesByName": by_name,
            "GroupBy": group_by if isinstance(group_by, str) else ",".join(group_by),
            "GroupBySlice": group_by_slice})
        q = self.template.execute(args)
        if not q:
            raise QueryBuildError("empty query produced by metrics query template")
        return q

    def build(self, series: str, gr: GroupResource, namespace: str, extra_group_by: list[str],
              metric_selector: LabelSelector | None, names: list[str]) -> str:
        parts = _selector_parts(metric_selector)
        if namespace:
            parts.append(_Part(self.converter.label_for_resource(NAMESPACES), [namespace], EQUALS))
        exprs, by_name = _process(parts)
        lbl = self.converter.label_for_resource(gr)
        target = "|".join(names)
        exprs.append((label_matches if len(names) > 1 else label_eq)(lbl, target))
        by_name[lbl] = target
        group_by = [lbl, *extra_group_by]
        return self._render(series, exprs, by_name, group_by, group_by)

    def build_external(self, series: str, namespace: str, metric_selector: LabelSelector | None) -> str:
        parts = _selector_parts(metric_selector)
        if self.namespaced and namespace:
            parts.append(_Part(self.converter.label_for_resource(NAMESPACES), [namespace], EQUALS))
        exprs, by_name = _process(parts)
        return self._render(series, exprs, by_name, "", [])


class MetricNamer:
    """One rule of ``rules`` / ``externalRules``."""

    def __init__(self, rule: DiscoveryRule, mapper: ResourceMapper):
        self.rule = rule
        self.series_query = rule.series_query
        self.converter = ResourceConverter(rule.resources, mapper)
        namespaced = True if rule.resources.namespaced is None else rule.resources.namespaced
        self.query = MetricsQuery(rule.metrics_query, self.converter, namespaced)
        self.filters = [ReMatcher.from_config(f) for f in rule.series_filters]
        if rule.name.matches:
            self.filters.append(ReMatcher.from_config(RegexFilter(is_=rule.name.matches)))
        self.name_matches = re.compile(rule.name.matches or ".*")
        self.name_as = name_as_default(rule.name)

    def filter_series(self, series: list[dict[str, str]]) -> list[dict[str, str]]:
        return [s for s in series if all(f.matches(s.get("__name__", "")) for f in self.filters)]

    def metric_name_for_series(self, name: str) -> str | None:
        m = self.name_matches.search(name)
        return go_expand(self.name_as, m) if m else None
