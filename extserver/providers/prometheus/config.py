"""prometheus-adapter's configuration file (``pkg/config/config.go``), field for field.

The file is read as Go's ``yaml.UnmarshalStrict`` reads it: an unknown field or a repeated
key is an error, scalars are taken as their YAML text (so ``as: 123`` is the string
``"123"``), booleans as YAML 1.1 spells them. Every error is one line that names the rule
(``rules[2]`` and its ``seriesQuery``) and the field; :func:`load` raises
:class:`ConfigError` with it. The templates are parsed here too, and the rule's naming and
filter expressions compiled, so a broken rule is refused at start-up, not at the first
request."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

import yaml

from ...machinery.validation import go_quote
from .template import Struct, Template, TemplateError

DURATION_RE = re.compile(r"^(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$")
_DURATION_UNITS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


class ConfigError(ValueError):
    """One line: where in the file, and what is wrong."""


def parse_prometheus_duration(s: str) -> float:
    """``model.ParseDuration`` (``5m``, ``1h30m``, ``2d``, ``500ms``, ``0``) in seconds."""
    if s == "0":
        return 0.0
    m = DURATION_RE.match(s) if s else None
    if not m or not any(m.group(i) for i in range(2, 15, 2)):
        raise ValueError(f"not a valid duration string: {go_quote(s)}")
    return float(sum(int(m.group(2 * i + 2) or 0) * u for i, u in enumerate(_DURATION_UNITS)))


# ---------------------------------------------------------------------------------------
# The configuration types (Go field names in the comments are the YAML keys)
# ---------------------------------------------------------------------------------------
@dataclass(slots=True)
class RegexFilter:
    is_: str = ""  # is
    is_not: str = ""  # isNot


@dataclass(slots=True)
class GroupResource:
    group: str = ""
    resource: str = ""


@dataclass(slots=True)
class ResourceMapping:
    template: str = ""
    overrides: dict[str, GroupResource] = field(default_factory=dict)
    namespaced: bool | None = None


@dataclass(slots=True)
class NameMapping:
    matches: str = ""
    as_: str = ""  # as


@dataclass(slots=True)
class DiscoveryRule:
    series_query: str = ""  # seriesQuery
    series_filters: list[RegexFilter] = field(default_factory=list)  # seriesFilters
    resources: ResourceMapping = field(default_factory=ResourceMapping)
    name: NameMapping = field(default_factory=NameMapping)
    metrics_query: str = ""  # metricsQuery
    where: str = ""  # "rules[0]" — for messages


@dataclass(slots=True)
class ResourceRule:
    container_query: str = ""  # containerQuery
    node_query: str = ""  # nodeQuery
    resources: ResourceMapping = field(default_factory=ResourceMapping)
    container_label: str = ""  # containerLabel
    where: str = ""


@dataclass(slots=True)
class ResourceRules:
    cpu: ResourceRule = field(default_factory=ResourceRule)
    memory: ResourceRule = field(default_factory=ResourceRule)
    window: float = 0.0  # seconds (a Prometheus duration in the file)


@dataclass(slots=True)
class MetricsDiscoveryConfig:
    rules: list[DiscoveryRule] = field(default_factory=list)
    resource_rules: ResourceRules | None = None  # resourceRules
    external_rules: list[DiscoveryRule] = field(default_factory=list)  # externalRules


# ---------------------------------------------------------------------------------------
# Strict YAML reading
# ---------------------------------------------------------------------------------------
class _StrictLoader(yaml.BaseLoader):
    """Every scalar stays its text (as yaml.v2 hands Go a string field); repeated keys fail."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f'line {key_node.start_mark.line + 1}: key "{key}" already set in map')
        seen.add(key)
    return yaml.BaseLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# plain ``~``/``null``/empty are null (a quoted "~" stays a string), as YAML 1.1 resolves them
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"),
                                    ["~", "n", "N", ""])
_StrictLoader.add_constructor("tag:yaml.org,2002:null", lambda loader, node: None)

_TRUE = {"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"}
_FALSE = {"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"}


class _Reader:
    """Walks the loaded document, turning it into the dataclasses with Go's strictness."""

    def __init__(self) -> None:
        self.rule = ""  # the rule being read, for messages

    def fail(self, path: str, msg: str) -> ConfigError:
        return ConfigError(": ".join(p for p in (self.rule, path, msg) if p))

    def string(self, v: Any, path: str) -> str:
        if v is None or v == "":
            return ""
        if not isinstance(v, str):
            raise self.fail(path, f"cannot unmarshal {'a map' if isinstance(v, dict) else 'a list'} into a string")
        return v

    def boolean(self, v: Any, path: str) -> bool | None:
        if v in (None, ""):
            return None
        if isinstance(v, str) and v in _TRUE:
            return True
        if isinstance(v, str) and v in _FALSE:
            return False
        raise self.fail(path, f"cannot unmarshal {go_quote(str(v))} into a bool")

    def mapping(self, v: Any, path: str, allowed: dict[str, str]) -> dict:
        """A map with only the ``allowed`` keys (YAML key -> attribute)."""
        if v in (None, ""):
            return {}
        if not isinstance(v, dict):
            raise self.fail(path, "expected a map")
        for k in v:
            if k not in allowed:
                raise self.fail(f"{path}.{k}" if path else str(k), f"unknown field {go_quote(str(k))}"
                                f" (known: {', '.join(allowed)})")
        return v

    def sequence(self, v: Any, path: str) -> list:
        if v in (None, ""):
            return []
        if not isinstance(v, list):
            raise self.fail(path, "expected a list")
        return v

    def resource_mapping(self, v: Any, path: str) -> ResourceMapping:
        d = self.mapping(v, path, {"template": "", "overrides": "", "namespaced": ""})
        rm = ResourceMapping(template=self.string(d.get("template"), f"{path}.template"),
                             namespaced=self.boolean(d.get("namespaced"), f"{path}.namespaced"))
        ov = d.get("overrides")
        if ov not in (None, ""):
            if not isinstance(ov, dict):
                raise self.fail(f"{path}.overrides", "expected a map of label name to {group, resource}")
            for label, gr in ov.items():
                p = f"{path}.overrides.{label}"
                g = self.mapping(gr, p, {"group": "", "resource": ""})
                rm.overrides[label] = GroupResource(self.string(g.get("group"), f"{p}.group"),
                                                    self.string(g.get("resource"), f"{p}.resource"))
        return rm

    def discovery_rule(self, v: Any, where: str) -> DiscoveryRule:
        sq = v.get("seriesQuery") if isinstance(v, dict) else None
        self.rule = f"{where} (seriesQuery {go_quote(sq)})" if isinstance(sq, str) and sq else where
        d = self.mapping(v, "", {"seriesQuery": "", "seriesFilters": "", "resources": "", "name": "",
                                 "metricsQuery": ""})
        rule = DiscoveryRule(series_query=self.string(d.get("seriesQuery"), "seriesQuery"),
                             metrics_query=self.string(d.get("metricsQuery"), "metricsQuery"), where=self.rule)
        for i, f in enumerate(self.sequence(d.get("seriesFilters"), "seriesFilters")):
            fd = self.mapping(f, f"seriesFilters[{i}]", {"is": "", "isNot": ""})
            rule.series_filters.append(RegexFilter(self.string(fd.get("is"), f"seriesFilters[{i}].is"),
                                                   self.string(fd.get("isNot"), f"seriesFilters[{i}].isNot")))
        rule.resources = self.resource_mapping(d.get("resources"), "resources")
        nd = self.mapping(d.get("name"), "name", {"matches": "", "as": ""})
        rule.name = NameMapping(self.string(nd.get("matches"), "name.matches"), self.string(nd.get("as"), "name.as"))
        return rule

    def resource_rule(self, v: Any, where: str) -> ResourceRule:
        self.rule = where
        d = self.mapping(v, "", {"containerQuery": "", "nodeQuery": "", "resources": "", "containerLabel": ""})
        return ResourceRule(container_query=self.string(d.get("containerQuery"), "containerQuery"),
                            node_query=self.string(d.get("nodeQuery"), "nodeQuery"),
                            resources=self.resource_mapping(d.get("resources"), "resources"),
                            container_label=self.string(d.get("containerLabel"), "containerLabel"), where=where)

    def document(self, doc: Any) -> MetricsDiscoveryConfig:
        top = self.mapping(doc, "", {"rules": "", "resourceRules": "", "externalRules": ""})
        cfg = MetricsDiscoveryConfig()
        for key, out in (("rules", cfg.rules), ("externalRules", cfg.external_rules)):
            for i, r in enumerate(self.sequence(top.get(key), key)):
                self.rule = ""
                out.append(self.discovery_rule(r, f"{key}[{i}]"))
        rr = top.get("resourceRules")
        if rr not in (None, ""):
            self.rule = "resourceRules"
            d = self.mapping(rr, "", {"cpu": "", "memory": "", "window": ""})
            rules = ResourceRules()
            w = self.string(d.get("window"), "window")
            if w:
                try:
                    rules.window = parse_prometheus_duration(w)
                except ValueError as e:
                    raise self.fail("window", str(e)) from None
            rules.cpu = self.resource_rule(d.get("cpu"), "resourceRules.cpu")
            rules.memory = self.resource_rule(d.get("memory"), "resourceRules.memory")
            cfg.resource_rules = rules
        self.rule = ""
        return cfg


# ---------------------------------------------------------------------------------------
# Checks that upstream makes when it builds its namers and queries (at start-up)
# ---------------------------------------------------------------------------------------
METRICS_QUERY_TEMPLATE = "metrics-query"
RESOURCE_LABEL_TEMPLATE = "resource-label"


def sample_query_args() -> Struct:
    """Arguments shaped as prometheus-adapter's ``queryTemplateArgs``, for a dry run."""
    return Struct("naming.queryTemplateArgs", {
        "Series": "series", "LabelMatchers": 'pod="p"', "LabelValuesByName": {"pod": "p"},
        "GroupBy": "pod", "GroupBySlice": ["pod"]})


def group_resource_arg(group: str, resource: str) -> Struct:
    return Struct("schema.GroupResource", {"Group": group, "Resource": resource})


def parse_metrics_query(text: str) -> Template:
    """Parse a metrics query template, and refuse one that names a field the arguments
    lack (Go finds that only at the first query; refusing it at start-up is kinder)."""
    t = Template.parse(METRICS_QUERY_TEMPLATE, text)
    try:
        t.execute(sample_query_args())
    except TemplateError as e:
        if "can't evaluate field" in str(e):
            raise
    return t


def _check(reader_rule: str, path: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except (TemplateError, ValueError, re.error) as e:
        raise ConfigError(f"{reader_rule}: {path}: {e}") from None


def validate(cfg: MetricsDiscoveryConfig) -> None:
    """Parse every template and compile every expression (the naming layer re-uses them)."""
    from .naming import ReMatcher, label_template_regex, name_as_default  # one definition of each check

    for rule in cfg.rules + cfg.external_rules:
        w = rule.where
        _check(w, "metricsQuery", lambda: parse_metrics_query(rule.metrics_query))
        for i, f in enumerate(rule.series_filters):
            _check(w, f"seriesFilters[{i}]", lambda: ReMatcher.from_config(f))
        if rule.resources.template:
            _check(w, "resources.template", lambda: label_template_regex(rule.resources.template))
        _check(w, "name.matches", lambda: re.compile(rule.name.matches or ".*"))
        _check(w, "name.as", lambda: name_as_default(rule.name))
    if cfg.resource_rules is not None:
        for rr in (cfg.resource_rules.cpu, cfg.resource_rules.memory):
            _check(rr.where, "containerQuery", lambda: parse_metrics_query(rr.container_query))
            _check(rr.where, "nodeQuery", lambda: parse_metrics_query(rr.node_query))
            if rr.resources.template:
                _check(rr.where, "resources.template", lambda: label_template_regex(rr.resources.template))


def loads(text: str) -> MetricsDiscoveryConfig:
    try:
        doc = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - BaseLoader builds no objects
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(f"{where}{getattr(e, 'problem', None) or e}") from None
    cfg = _Reader().document(doc)
    validate(cfg)
    return cfg


def load(path: str) -> MetricsDiscoveryConfig:
    """Read and check the file; :class:`ConfigError` (one line) or ``OSError``."""
    with open(path, encoding="utf-8") as f:
        return loads(f.read())
