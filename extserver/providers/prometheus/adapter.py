"""The adapter assembled: configuration + Prometheus client + series relist + the three
providers, and the API groups that serve them (built on the framework's
:class:`~extserver.providers.custom_metrics.CustomMetricsAPI`,
:class:`~extserver.providers.external_metrics.ExternalMetricsAPI` and
:func:`~extserver.apis.metrics.metrics_group`). A group is served only when the
configuration has rules for it, as upstream installs only those providers."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from urllib.parse import urlparse

from ...auth.kubeclient import KubeClient, KubeConfigError
from ...options.errors import FlagError
from ..mapper import ResourceMapper
from ..metrics_api import GroupResource, ObjectLister, ObjectMeta
from ..provider import SourceUnavailable
from .client import PrometheusClient, parse_header_args
from .config import ConfigError, MetricsDiscoveryConfig, load
from .discovery import CustomSeriesRegistry, ExternalSeriesRegistry, SeriesRelister
from .naming import NODES, PODS, MetricNamer
from .objects import LiveObjects
from .provider import PrometheusCustomMetrics, PrometheusExternalMetrics
from .resource import PrometheusResourceMetrics

log = logging.getLogger("extserver.prometheus")

READY_CHECK = "prometheus-series-relist"


class KubeConnection:
    """The main apiserver, connected on first use (``--kubeconfig`` or in-cluster)."""

    def __init__(self, kubeconfig: str | None, available: bool):
        self.kubeconfig = kubeconfig
        self.available = available
        self._client: KubeClient | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> KubeClient:
        if not self.available:
            raise SourceUnavailable("no connection to the cluster to list objects (start the server with "
                                    "--kubeconfig or in a cluster)")
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await KubeClient.load(self.kubeconfig)
                except KubeConfigError as e:
                    raise SourceUnavailable(str(e)) from None
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


class LazyObjects:
    """:class:`LiveObjects` of one resource over a :class:`KubeConnection`."""

    def __init__(self, conn: KubeConnection, mapper: ResourceMapper, gr: GroupResource):
        self.conn = conn
        self.mapper = mapper
        self.gr = gr

    async def _objects(self) -> LiveObjects:
        kind = self.mapper.lookup(self.gr)
        if kind is None:
            raise SourceUnavailable(f"unable to list matching resources: unknown resource {self.gr}")
        return LiveObjects(await self.conn.get(), kind)

    async def list(self, namespace: str, selector) -> list[ObjectMeta]:
        return await (await self._objects()).list(namespace, selector)

    async def get(self, namespace: str, name: str) -> ObjectMeta | None:
        return await (await self._objects()).get(namespace, name)


@dataclass
class PrometheusAdapter:
    client: PrometheusClient
    config: MetricsDiscoveryConfig
    relister: SeriesRelister
    mapper: ResourceMapper
    kube: KubeConnection
    custom: PrometheusCustomMetrics | None = None
    external: PrometheusExternalMetrics | None = None
    resource: PrometheusResourceMetrics | None = None
    listers: dict[GroupResource, ObjectLister] = field(default_factory=dict)
    #: informers on the cluster's running pods and nodes (None without a cluster), shared by
    #: metrics.k8s.io and ``pods/*`` of custom.metrics.k8s.io
    pods: ObjectLister | None = None
    nodes: ObjectLister | None = None

    @classmethod
    def build(cls, config: MetricsDiscoveryConfig, client: PrometheusClient, *, relist_interval: float,
              max_age: float, kubeconfig: str | None, cluster_available: bool) -> "PrometheusAdapter":
        """Raises ValueError (a rule that upstream would refuse while building its namers)."""
        mapper = ResourceMapper()

        def namer(rule) -> MetricNamer:
            try:
                return MetricNamer(rule, mapper)
            except ValueError as e:
                raise ValueError(f"{rule.where}: resources.{e}") from None

        custom_namers = [namer(r) for r in config.rules]
        external_namers = [namer(r) for r in config.external_rules]
        custom_reg, external_reg = CustomSeriesRegistry(mapper), ExternalSeriesRegistry()
        relister = SeriesRelister(client, custom_namers, external_namers, custom_reg, external_reg,
                                  interval=relist_interval, max_age=max_age)
        a = cls(client, config, relister, mapper, KubeConnection(kubeconfig, cluster_available))
        if cluster_available:
            from ..resource_metrics import ClusterObjects
            a.pods = ClusterObjects("pods", kubeconfig=kubeconfig)
            a.nodes = ClusterObjects("nodes", kubeconfig=kubeconfig)
        if config.rules:
            a.custom = PrometheusCustomMetrics(client, custom_reg, mapper, a.lister_for)
        if config.external_rules:
            a.external = PrometheusExternalMetrics(client, external_reg)
        if config.resource_rules is not None:
            a.resource = PrometheusResourceMetrics(client, config.resource_rules, mapper)
        return a

    def lister_for(self, gr: GroupResource) -> ObjectLister:
        """Where ``name = *`` finds its objects: the pod informer (an HPA's Pods metric asks
        for pods on every sync: no list round trip per request), a live list for any other
        resource, as upstream."""
        if gr == PODS and self.pods is not None:
            return self.pods
        lister = self.listers.get(gr)
        if lister is None:
            lister = self.listers[gr] = LazyObjects(self.kube, self.mapper, gr)
        return lister

    def groups(self) -> list:
        from ...apis.metrics import metrics_group
        from ..custom_metrics import CustomMetricsAPI
        from ..external_metrics import ExternalMetricsAPI
        out: list = []
        if self.custom is not None:
            out.append(CustomMetricsAPI(self.custom, mapper=self.mapper))
        if self.external is not None:
            out.append(ExternalMetricsAPI(self.external))
        if self.resource is not None:  # without a cluster, the lazy listers answer 503
            out.append(metrics_group(self.resource, pods=self.lister_for(PODS),
                                     nodes=self.nodes if self.nodes is not None else self.lister_for(NODES)))
        return out

    def install(self, server) -> None:
        """Relist in the background from start-up, the readiness check, clean shutdown."""
        async def start(_server) -> None:
            self.relister.start()

        async def ready() -> tuple[bool, str]:
            return self.relister.ready()

        server.add_post_start_hook("start-prometheus-series-relist", start)
        server.health.add(READY_CHECK, ready, healthz=False)
        server.shutdown_hooks.append(self.stop)

    async def stop(self) -> None:
        await self.relister.stop()
        await self.kube.close()


def adapter_from_args(args, *, cluster_available: bool) -> "PrometheusAdapter | None":
    """The adapter of ``--adapter-config`` (None without it); FlagError for anything unusable."""
    if not args.adapter_config:
        return None
    try:
        cfg = load(args.adapter_config)
    except OSError as e:
        raise FlagError(f"--adapter-config {args.adapter_config}: {e.strerror}") from None
    except ConfigError as e:
        raise FlagError(f"--adapter-config {args.adapter_config}: {e}") from None
    u = urlparse(args.prometheus_url)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise FlagError(f"--prometheus-url {args.prometheus_url!r}: invalid Prometheus URL")
    if args.prometheus_verb not in ("GET", "POST"):
        raise FlagError(f'--prometheus-verb: unsupported Prometheus HTTP verb "{args.prometheus_verb}"; '
                        'supported verbs: "GET" and "POST"')
    if args.metrics_relist_interval <= 0:
        raise FlagError("--metrics-relist-interval must be greater than 0")
    max_age = args.metrics_max_age or args.metrics_relist_interval
    if cfg.rules and max_age < args.metrics_relist_interval:
        raise FlagError("--metrics-max-age: max age must not be less than relist interval")
    if bool(args.prometheus_client_tls_cert_file) != bool(args.prometheus_client_tls_key_file):
        raise FlagError("--prometheus-client-tls-cert-file and --prometheus-client-tls-key-file must be given together")
    # a query must fail (503) before the provider deadline cuts it off (504)
    timeout = max(0.5, 0.8 * getattr(args, "provider_timeout", 10.0))
    client = PrometheusClient(args.prometheus_url, ca_file=args.prometheus_ca_file,
                              cert_file=args.prometheus_client_tls_cert_file,
                              key_file=args.prometheus_client_tls_key_file,
                              token_file=args.prometheus_token_file,
                              headers=parse_header_args(args.prometheus_header), timeout=timeout,
                              verb=args.prometheus_verb)
    try:
        client.check()
    except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
        raise FlagError(f"--prometheus-ca-file/--prometheus-token-file: {getattr(e, 'strerror', None) or e}") from None
    try:
        return PrometheusAdapter.build(cfg, client, relist_interval=args.metrics_relist_interval, max_age=max_age,
                                       kubeconfig=args.kubeconfig, cluster_available=cluster_available)
    except ValueError as e:
        raise FlagError(f"--adapter-config {args.adapter_config}: {e}") from None
