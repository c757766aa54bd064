"""Start the real ``extserver serve`` in cluster mode: delegated authentication and
authorization against the kube-apiserver TEST stand-in (tests/standin), with the cluster's
front-proxy and client CAs, and talk to it over HTTPS with any client certificate and
repeated headers (as the kube-aggregator sends ``X-Remote-Group``)."""
from __future__ import annotations

import http.client
import json
import shutil
import ssl
from dataclasses import dataclass

import requests

from extserver.server import certs
from tests.e2e.harness import ServerProcess, new_tmp_dir
from tests.standin import pki
from tests.standin.kube_apiserver_standin import KubeAPIServerStandin

CM = "extension-apiserver-authentication"
PROXY_CN = "front-proxy-client"


def authentication_configmap(front_proxy_ca: certs.CertKey, client_ca: certs.CertKey | None,
                             allowed_names: list[str] | None = None) -> dict[str, str]:
    """The ``kube-system/extension-apiserver-authentication`` data kube-apiserver publishes."""
    data = {"requestheader-client-ca-file": front_proxy_ca.cert_pem.decode(),
            "requestheader-allowed-names": json.dumps(allowed_names if allowed_names is not None else [PROXY_CN]),
            "requestheader-username-headers": '["X-Remote-User"]',
            "requestheader-group-headers": '["X-Remote-Group"]',
            "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]'}
    if client_ca is not None:
        data["client-ca-file"] = client_ca.cert_pem.decode()
    return data


class ClusterEnv:
    """A stand-in main apiserver, a kubeconfig for it, the cluster's CAs (published in the
    ConfigMap) and a front-proxy client certificate."""

    def __init__(self) -> None:
        self.dir = new_tmp_dir("extserver-cluster-")
        self.standin = KubeAPIServerStandin(self.dir / "standin").start()
        self.kubeconfig = self.standin.write_kubeconfig(self.dir / "kubeconfig")
        self.front_proxy_ca = certs.new_ca("front-proxy-ca")
        self.client_ca = certs.new_ca("kubernetes-client-ca")
        self.proxy = self.cert("front-proxy", self.front_proxy_ca, PROXY_CN)
        self.standin.set_configmap(CM, authentication_configmap(self.front_proxy_ca, self.client_ca))

    def cert(self, name: str, ca: certs.CertKey, cn: str, orgs: list[str] | None = None) -> pki.ClientCert:
        return pki.client_cert(self.dir, name, ca, cn, orgs)

    def server_args(self) -> list[str]:
        return ["--authentication-kubeconfig", str(self.kubeconfig),
                "--authorization-kubeconfig", str(self.kubeconfig)]

    def close(self) -> None:
        self.standin.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> dict:
        return json.loads(self.body)


class ClusterServer(ServerProcess):
    """``extserver serve`` in cluster mode; no local admin certificate exists."""

    def __init__(self, env: ClusterEnv, extra_args: list[str] | None = None):
        super().__init__(new_tmp_dir("extserver-cluster-data-"), extra_args=env.server_args() + (extra_args or []))
        self.env = env

    def session(self, cert: bool = False) -> requests.Session:  # type: ignore[override]
        s = requests.Session()
        s.trust_env = False
        s.verify = str(self.ca)
        return s

    def request(self, method: str, path: str, *, cert: pki.ClientCert | None = None,
                headers: list[tuple[str, str]] | None = None, body: dict | None = None,
                timeout: float = 30.0) -> Answer:
        """One HTTPS request with repeatable headers (``[("X-Remote-Group", "a"), ...]``)."""
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if cert is not None:
            ctx.load_cert_chain(*cert.pair)
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=timeout)
        try:
            conn.putrequest(method, path)
            data = json.dumps(body).encode() if body is not None else b""
            for k, v in (headers or []) + [("Accept", "application/json")]:
                conn.putheader(k, v)
            if body is not None:
                conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(len(data)))
            conn.endheaders(data or None)
            resp = conn.getresponse()
            return Answer(resp.status, resp.read(), dict(resp.getheaders()))
        finally:
            conn.close()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
