"""``extserver serve``: complete the options (certificates, local mode), validate them,
build the server and run it."""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Callable

import orjson
import yaml

from ..options import ERROR_PREFIX, FlagError, load_groups
from ..options.pemfiles import check_pem_flags
from ..options.workers import resolve_workers
from ..filters.httplog import KV_ATTR
from ..storage.interface import StorageError
from . import certs
from .workers import MetricsPeers, Supervisor, reserve_port

log = logging.getLogger("extserver")

LOCAL_ADMIN = "extserver-admin"


def _verbosity(record: logging.LogRecord) -> int:
    return max(0, logging.INFO - record.levelno)


class _JsonFormatter(logging.Formatter):
    """One JSON object per line, as klog's JSON format: ``ts``, ``v`` (or ``level``),
    ``logger``, ``msg``, the record's key/value pairs, ``err``."""

    def format(self, record: logging.LogRecord) -> str:
        d: dict = {"ts": record.created}
        if record.levelno <= logging.INFO:
            d["v"] = _verbosity(record)
        else:
            d["level"] = record.levelname.lower()
        d["logger"] = record.name
        d["msg"] = record.getMessage()
        for k, v in (getattr(record, KV_ATTR, None) or {}).items():
            d[k] = v
        if record.exc_info:
            d["err"] = self.formatException(record.exc_info)
        return orjson.dumps(d, default=str).decode()


class _TextFormatter(logging.Formatter):
    """klog's text header (``I1124 03:22:00.123456   4242 logger] msg key="value"``)."""

    def format(self, record: logging.LogRecord) -> str:
        sev = "I" if record.levelno <= logging.INFO else record.levelname[0]
        t = time.localtime(record.created)
        head = (f"{sev}{t.tm_mon:02d}{t.tm_mday:02d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}."
                f"{int(record.created % 1 * 1e6):06d} {record.process:7d} {record.name}] ")
        line = head + record.getMessage()
        for k, v in (getattr(record, KV_ATTR, None) or {}).items():
            line += f" {k}={orjson.dumps(v, default=str).decode() if not isinstance(v, (int, float)) else v}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(fmt: str, verbosity: int) -> None:
    """``--log-format text|json`` on stderr; ``-v N`` shows klog's ``V(n)`` records for n <= N
    (``V(3)``: one line per request). Libraries stay at WARNING below ``-v=6``."""
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [h]
    root.setLevel(max(1, logging.INFO - verbosity))
    for noisy in ("aiohttp", "asyncio", "grpc", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING if verbosity < 6 else logging.NOTSET)


def announce(msg: str, fmt: str) -> None:
    """A start-up line for the person (or script) that started the server, on stdout: plain
    ``extserver: msg``, or with ``--log-format=json`` a JSON line like every log record."""
    if fmt == "json":
        line = orjson.dumps({"ts": time.time(), "v": 0, "logger": "extserver", "msg": msg}).decode()
    else:
        line = f"extserver: {msg}"
    print(line, flush=True)


def in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and Path(
        "/var/run/secrets/kubernetes.io/serviceaccount/token").exists()


def is_local_mode(args) -> bool:
    return not (args.authentication_kubeconfig or args.authorization_kubeconfig or args.client_ca_file
                or args.requestheader_client_ca_file or in_cluster())


def write_kubeconfig(path: Path, *, server: str, ca_pem: bytes, cert: Path, key: Path, user: str) -> None:
    import base64
    cfg = {
        "apiVersion": "v1", "kind": "Config", "current-context": "extserver",
        "clusters": [{"name": "extserver", "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": user, "user": {"client-certificate": str(cert.resolve()),
                                          "client-key": str(key.resolve())}}],
        "contexts": [{"name": "extserver", "context": {"cluster": "extserver", "user": user,
                                                        "namespace": "default"}}],
    }
    certs.write_private(path, yaml.safe_dump(cfg, sort_keys=False).encode())


def make_backend(args):
    if args.storage_backend == "embedded":
        from ..storage.embedded import EmbeddedBackend
        backend = EmbeddedBackend(Path(args.data_dir) / "store", sync=args.embedded_sync,
                                  compaction_interval=args.etcd_compaction_interval)
    else:
        if not args.etcd_servers:
            raise FlagError("--etcd-servers is required with --storage-backend=etcd3")
        from ..storage.etcd3 import Etcd3Backend
        backend = Etcd3Backend(args.etcd_servers, prefix=args.etcd_prefix, ca_file=args.etcd_cafile,
                               cert_file=args.etcd_certfile, key_file=args.etcd_keyfile,
                               compaction_interval=args.etcd_compaction_interval)
    if args.encryption_provider_config:
        from ..storage.encryption import EncryptingBackend, load_encryption_config_per_resource
        try:
            transformer = load_encryption_config_per_resource(args.encryption_provider_config)
        except (ValueError, OSError, yaml.YAMLError) as e:
            raise FlagError(f"--encryption-provider-config {args.encryption_provider_config}: {e}") from None
        backend = EncryptingBackend(backend, transformer)
    if args.storage_backend == "etcd3" and args.default_watch_cache_size > 0:
        # the watch cache, outermost: one etcd watch per resource fans out to every watcher,
        # resourceVersion=0 lists come from memory, and events are decrypted once
        from ..storage.cacher import Cacher
        backend = Cacher(backend, watch_cache_size=args.default_watch_cache_size)
    return backend


def make_auditor(args):
    """The audit log from ``--audit-log-path`` + ``--audit-policy-file`` (both needed, as in
    kube: with no policy nothing is recorded)."""
    if not args.audit_log_path:
        return None
    if not args.audit_policy_file:
        log.warning("--audit-log-path is set without --audit-policy-file: no audit events are recorded")
        return None
    from ..filters.audit import AuditLogSink, AuditPolicy, Auditor, PolicyError
    try:
        policy = AuditPolicy.load(args.audit_policy_file)
    except PolicyError as e:
        raise FlagError(str(e)) from None
    try:
        sink = AuditLogSink(args.audit_log_path)
    except OSError as e:
        raise FlagError(f"--audit-log-path {args.audit_log_path}: {e.strerror}") from None
    return Auditor(policy, sink, max_body_bytes=args.max_request_body_bytes)


async def register_own_apiservices(args, groups, ca_bundle_pem: bytes) -> None:
    """``--register-apiservice``: create or update this server's APIServices (one per served
    group-version) with its serving CA as ``caBundle``, using the in-cluster service account
    or ``--kubeconfig``. Needs RBAC to get/create/update apiservices."""
    from kubernetes import client, config
    from .apiservice import register_apiservices

    def load() -> client.ApiClient:
        if args.kubeconfig:
            return config.new_client_from_config(config_file=args.kubeconfig)
        config.load_incluster_config()
        return client.ApiClient()

    api_client = await asyncio.to_thread(load)
    group_versions = [(g.name, v) for g in groups for v in g.served_versions()]
    results = await register_apiservices(api_client, group_versions, service_name=args.service_name,
                                         service_namespace=args.service_namespace, ca_bundle_pem=ca_bundle_pem)
    for r in results:
        log.info("APIService %s %s", r.name, r.action)


def run_serve(args) -> int:
    setup_logging(args.log_format, args.verbosity)
    adapter = None
    if args.adapter_config:  # the Prometheus adapter: its metrics groups, checked before anything starts
        from ..providers.prometheus.adapter import adapter_from_args
        adapter = adapter_from_args(args, cluster_available=bool(args.kubeconfig) or in_cluster())
    groups = load_groups(args, extra=adapter.groups() if adapter is not None else ())
    data_dir = Path(args.data_dir)
    try:
        certs.ensure_private_dir(data_dir)  # 0700, as kube keeps etcd's data directory
    except OSError as e:
        raise FlagError(f"--data-dir {args.data_dir}: {e.strerror}") from None
    cert_dir = Path(args.cert_dir) if args.cert_dir else data_dir / "certs"
    if bool(args.tls_cert_file) != bool(args.tls_private_key_file):
        raise FlagError("--tls-cert-file and --tls-private-key-file must be given together")
    for flag in ("tls_cert_file", "tls_private_key_file", "client_ca_file", "requestheader_client_ca_file",
                 "authentication_kubeconfig", "authorization_kubeconfig", "kubeconfig",
                 "encryption_provider_config", "audit_policy_file"):
        v = getattr(args, flag, None)
        if v and not Path(v).is_file():
            raise FlagError(f"--{flag.replace('_', '-')} {v}: no such file")
    check_pem_flags(args)
    workers = resolve_workers(args.workers, args.storage_backend)
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in args.bind_address else socket.AF_INET, args.bind_address)
    except OSError:
        raise FlagError(f"--bind-address {args.bind_address!r} is not an IP address") from None

    host_for_url = "127.0.0.1" if args.bind_address in ("0.0.0.0", "::") else args.bind_address
    svc, ns = args.service_name, args.service_namespace
    if args.tls_cert_file:
        cert_file, key_file = args.tls_cert_file, args.tls_private_key_file
        serving_ca = Path(cert_file).read_bytes()
    else:
        hosts = [f"{svc}.{ns}.svc", f"{svc}.{ns}.svc.cluster.local", "localhost"]
        ips = ["127.0.0.1"] + ([args.bind_address] if args.bind_address not in ("0.0.0.0", "::", "127.0.0.1") else [])
        certs.ensure_private_dir(cert_dir)
        c, k, ca = certs.ensure_self_signed_serving(cert_dir, hosts=hosts, ips=ips)
        cert_file, key_file, serving_ca = str(c), str(k), ca.read_bytes()

    from ..server.app import ExtServer, ServingOptions, serve
    from ..server.handlers import HandlerConfig
    from ..server.tls import DynamicTLS, peer_der
    try:
        tls = DynamicTLS(cert_file, key_file, min_version=args.tls_min_version)
    except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
        raise FlagError(f"--tls-cert-file/--tls-private-key-file: {e}") from None
    from ..filters.authorization import path_matcher
    try:
        path_matcher(args.authorization_always_allow_paths)
    except ValueError as e:
        raise FlagError(f"--authorization-always-allow-paths: {e}") from None
    from ..server.connections import ConnectionLimits
    limits = ConnectionLimits(read_header_timeout=args.read_header_timeout, idle_timeout=args.idle_timeout,
                              max_header_bytes=args.max_header_bytes, tls_handshake_timeout=args.tls_handshake_timeout,
                              max_connections=args.max_connections, max_tls_handshakes=args.max_tls_handshakes)
    serving = ServingOptions(request_timeout=args.request_timeout, max_requests_inflight=args.max_requests_inflight,
                             max_mutating_requests_inflight=args.max_mutating_requests_inflight, connections=limits)
    auditor = make_auditor(args)
    backend = make_backend(args)
    hc = HandlerConfig(max_body_bytes=args.max_request_body_bytes, min_request_timeout=args.min_request_timeout,
                       provider_timeout=args.provider_timeout)
    local = is_local_mode(args)
    if local:
        local_ca = certs.ensure_ca(data_dir, "local-ca", "extserver-local-ca")
        admin_crt, admin_key = certs.ensure_client_cert(data_dir, "admin", local_ca, LOCAL_ADMIN, ["system:masters"])
        tls.set_client_cas(local_ca.cert_pem)
        from ..auth.local import LocalAuth  # only the pinned admin certificate; see docs/auth.md
        local_auth = LocalAuth.from_files(local_ca.cert, admin_crt, peer_der)
        kubeconfig = data_dir / "kubeconfig"

        async def build_server(plugins: list) -> ExtServer:
            return ExtServer(groups, backend, handler_config=hc, authenticate=local_auth.authenticate,
                             authorize=local_auth.authorize,
                             anonymous_auth=bool(args.anonymous_auth),
                             always_allow_paths=tuple(args.authorization_always_allow_paths),
                             serving=serving, auditor=auditor, admission_plugins=plugins)
    else:
        kubeconfig = None

        async def build_server(plugins: list) -> ExtServer:
            from ..auth.delegating import build_cluster_auth  # cluster mode: front-proxy, TokenReview, SAR
            auth = await build_cluster_auth(args, tls)  # sets the trusted client CAs on ``tls``
            server = ExtServer(groups, backend, handler_config=hc, authenticate=auth.authenticate,
                               authorize=auth.authorize, anonymous_auth=auth.anonymous_auth,
                               always_allow_paths=tuple(args.authorization_always_allow_paths),
                               strip_credentials=auth.strip_credentials, serving=serving, auditor=auditor,
                               admission_plugins=plugins)
            server.add_post_start_hook("authentication-config", lambda _server: auth.start())
            server.shutdown_hooks.append(auth.stop)
            server.metrics.add_collector(auth.render_metrics)
            return server

    def on_listening(port: int) -> None:
        url = f"https://{host_for_url}:{port}"
        if kubeconfig is not None:
            write_kubeconfig(kubeconfig, server=url, ca_pem=serving_ca if not args.tls_cert_file else serving_ca,
                             cert=admin_crt, key=admin_key, user=LOCAL_ADMIN)
            announce(f"serving {', '.join(g.name for g in groups)} on {url} (local mode)", args.log_format)
            announce(f"admin kubeconfig: {kubeconfig}", args.log_format)
            announce(f"try: kubectl --kubeconfig {kubeconfig} api-resources", args.log_format)
        else:
            announce(f"serving {', '.join(g.name for g in groups)} on {url}", args.log_format)

    try:
        import uvloop  # type: ignore
        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run

    async def main(port: int, reuse_port: bool, listening: Callable[[int], None],
                   peers: MetricsPeers | None) -> int:
        from ..admission.namespace_lifecycle import namespace_lifecycle_from_args
        lifecycle = await namespace_lifecycle_from_args(args)  # with --kubeconfig or in a cluster
        server = await build_server([lifecycle] if lifecycle is not None else [])
        if adapter is not None:
            adapter.install(server)
        server.kubeconfig = args.kubeconfig
        if lifecycle is not None:
            server.shutdown_hooks.append(lifecycle.stop)
        if args.register_apiservice:
            server.add_post_start_hook("apiservice-registration",
                                       lambda _server: register_own_apiservices(args, groups, serving_ca))
        if peers is not None:
            await peers.start(server.metrics)
            server.shutdown_hooks.append(peers.stop)
        return await serve(server, host=args.bind_address, port=port, tls=tls, reuse_port=reuse_port,
                           shutdown_delay=args.shutdown_delay_duration, on_listening=listening)

    def run(port: int, reuse_port: bool, listening: Callable[[int], None], peers: MetricsPeers | None = None) -> int:
        try:
            return runner(main(port, reuse_port, listening, peers))
        except StorageError as e:
            sys.stderr.write(f"{ERROR_PREFIX}storage: {e}\n")
            return 1
        except OSError as e:
            sys.stderr.write(f"{ERROR_PREFIX}cannot listen on {args.bind_address}:{port}: {e.strerror}\n")
            return 1

    if workers == 1:
        return run(args.secure_port, False, on_listening)
    try:
        reserved = reserve_port(args.bind_address, args.secure_port)
    except OSError as e:
        sys.stderr.write(f"{ERROR_PREFIX}cannot listen on {args.bind_address}:{args.secure_port}: {e.strerror}\n")
        return 1
    log.info("starting %d workers", workers)

    def worker(_index: int, port: int, peers: MetricsPeers, ready_fd: int) -> int:
        try:
            return run(port, True, lambda _port: os.write(ready_fd, b"."), peers)
        except FlagError as e:  # found while building the server (e.g. the cluster's auth config)
            sys.stderr.write(f"{ERROR_PREFIX}{e}\n")
            return 2

    return Supervisor(workers, worker).run(reserved, on_listening)
