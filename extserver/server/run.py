"""``extserver serve``: complete the options (certificates, local mode), validate them,
build the server and run it."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import ssl
import sys
from pathlib import Path

import yaml

from ..cli import FlagError, load_groups
from ..storage.interface import StorageError
from . import certs

log = logging.getLogger("extserver")

LOCAL_ADMIN = "extserver-admin"


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        d = {"ts": record.created, "level": record.levelname.lower(), "logger": record.name,
             "msg": record.getMessage()}
        if record.exc_info:
            d["err"] = self.formatException(record.exc_info)
        return json.dumps(d)


def setup_logging(fmt: str, verbosity: int) -> None:
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(_JsonFormatter() if fmt == "json" else
                   logging.Formatter("%(asctime)s %(levelname).1s %(name)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [h]
    root.setLevel(logging.DEBUG if verbosity >= 4 else logging.INFO)


def in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and Path(
        "/var/run/secrets/kubernetes.io/serviceaccount/token").exists()


def is_local_mode(args) -> bool:
    return not (args.authentication_kubeconfig or args.authorization_kubeconfig or args.client_ca_file
                or args.requestheader_client_ca_file or in_cluster())


def tls_context(cert_file: str, key_file: str, min_version: str, client_cas_pem: bytes | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3 if min_version == "VersionTLS13" else ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    ctx.set_alpn_protocols(["http/1.1"])
    if client_cas_pem:
        ctx.load_verify_locations(cadata=client_cas_pem.decode())
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


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
        backend = EmbeddedBackend(Path(args.data_dir) / "store", sync=args.embedded_sync)
    else:
        if not args.etcd_servers:
            raise FlagError("--etcd-servers is required with --storage-backend=etcd3")
        from ..storage.etcd3 import Etcd3Backend
        backend = Etcd3Backend(args.etcd_servers, prefix=args.etcd_prefix, ca_file=args.etcd_cafile,
                               cert_file=args.etcd_certfile, key_file=args.etcd_keyfile,
                               compaction_interval=args.etcd_compaction_interval)
    if args.encryption_provider_config:
        from ..storage.encryption import EncryptingBackend, load_encryption_config
        backend = EncryptingBackend(backend, load_encryption_config(args.encryption_provider_config))
    return backend


def run_serve(args) -> int:
    setup_logging(args.log_format, args.verbosity)
    groups = load_groups(args)
    data_dir = Path(args.data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
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
        c, k, ca = certs.ensure_self_signed_serving(cert_dir, hosts=hosts, ips=ips)
        cert_file, key_file, serving_ca = str(c), str(k), ca.read_bytes()

    from ..server.app import ExtServer, serve
    from ..server.handlers import HandlerConfig
    backend = make_backend(args)
    hc = HandlerConfig(max_body_bytes=args.max_request_body_bytes, min_request_timeout=args.min_request_timeout)
    local = is_local_mode(args)
    announce: list[str] = []
    if local:
        local_ca = certs.ensure_ca(data_dir, "local-ca", "extserver-local-ca")
        admin_crt, admin_key = certs.ensure_client_cert(data_dir, "admin", local_ca, LOCAL_ADMIN, ["system:masters"])
        client_cas_pem = local_ca.cert_pem
        from ..auth.x509 import X509Authenticator
        x509auth = X509Authenticator([local_ca.cert])

        async def authenticate(request):
            return x509auth.authenticate_der(_peer_der(request))

        async def authorize(user, info):  # AlwaysAllow, for the local admin only (authn admits no one else)
            return True, ""

        server = ExtServer(groups, backend, handler_config=hc, authenticate=authenticate, authorize=authorize,
                           anonymous_auth=bool(args.anonymous_auth),
                           always_allow_paths=tuple(args.authorization_always_allow_paths))
        kubeconfig = data_dir / "kubeconfig"
    else:
        from ..auth.delegating import build_cluster_auth  # cluster mode: front-proxy, TokenReview, SAR
        server, client_cas_pem = build_cluster_auth(args, groups, backend, hc)
        kubeconfig = None

    ssl_ctx = tls_context(cert_file, key_file, args.tls_min_version, client_cas_pem)

    def on_listening(port: int) -> None:
        url = f"https://{host_for_url}:{port}"
        if kubeconfig is not None:
            write_kubeconfig(kubeconfig, server=url, ca_pem=serving_ca if not args.tls_cert_file else serving_ca,
                             cert=admin_crt, key=admin_key, user=LOCAL_ADMIN)
            print(f"extserver: serving {', '.join(g.name for g in groups)} on {url} (local mode)", flush=True)
            print(f"extserver: admin kubeconfig: {kubeconfig}", flush=True)
            print(f"extserver: try: kubectl --kubeconfig {kubeconfig} api-resources", flush=True)
        else:
            print(f"extserver: serving {', '.join(g.name for g in groups)} on {url}", flush=True)

    try:
        import uvloop  # type: ignore
        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    try:
        runner(serve(server, host=args.bind_address, port=args.secure_port, ssl_context=ssl_ctx,
                     shutdown_delay=args.shutdown_delay_duration, on_listening=on_listening))
    except StorageError as e:
        sys.stderr.write(f"extserver: error: storage: {e}\n")
        return 1
    except OSError as e:
        sys.stderr.write(f"extserver: error: cannot listen on {args.bind_address}:{args.secure_port}: {e.strerror}\n")
        return 1
    return 0


def _peer_der(request) -> bytes | None:
    transport = request.transport
    if transport is None:
        return None
    sslobj = transport.get_extra_info("ssl_object")
    if sslobj is None:
        return None
    try:
        return sslobj.getpeercert(binary_form=True)
    except ValueError:
        return None
