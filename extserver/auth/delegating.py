"""Cluster-mode authentication and authorization, delegated to the main apiserver as
k8s.io/apiserver's ``DelegatingAuthenticationOptions`` / ``DelegatingAuthorizationOptions``.

Authentication, first success wins (kube's union):
1. request header (front proxy): believed only for a client certificate directly issued by
   the request-header CA whose CN is allowed;
2. x509 client certificate issued by the client CA: user = CN, groups = O;
3. ``Authorization: Bearer`` token: ``TokenReview``, cached;
then, if none succeeded: any of them failing (a certificate of the wrong CA, a CN not
allowed, a rejected token) is 401 ``Unauthorized``; otherwise anonymous
(``system:anonymous``, group ``system:unauthenticated``) if enabled, else 401.
Authenticated users always get ``system:authenticated``.

Authorization (``Delegated``): ``--authorization-always-allow-groups``, then
``--authorization-always-allow-paths`` (non-resource requests), then a cached
``SubjectAccessReview``. A review that fails is a 500 (kube's authorization filter answers
an authorizer error with ``Internal Server Error``), a denial a 403."""
from __future__ import annotations

import logging
import os
import ssl
from pathlib import Path
from typing import Any, Callable, Protocol

from aiohttp import web

from ..filters.requestinfo import RequestInfo
from ..machinery import errors as E
from .authconfig import (CONFIGMAP_NAME, CONFIGMAP_NAMESPACE, CONFIGMAP_PATH, AuthSettings, CABundleError, CAFile,
                         DynamicAuthConfig, HeaderSettings)
from .informer import Informer
from .kubeclient import KubeClient, KubeConfigError
from .requestheader import RequestHeaderAuthenticator, strip_auth_headers
from .subjectaccessreview import PathAuthorizer, SubjectAccessReviewAuthorizer
from .tokenreview import TokenReviewAuthenticator, bearer_token
from .user import UserInfo
from .x509 import X509Authenticator

log = logging.getLogger("extserver.auth")

SA_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
#: how long start() waits for the first ConfigMap list before serving anyway
CONFIGMAP_SYNC_TIMEOUT = 10.0


class ClientCATarget(Protocol):
    """What the TLS layer offers: replace the trusted client-CA bundle for the next handshake."""

    def set_client_cas(self, pem: bytes) -> None: ...


PeerDER = Callable[[web.Request], "bytes | None"]


def in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and SA_TOKEN.exists()


class ClusterAuth:
    """The authenticator and authorizer of a server in a cluster. See the module doc."""

    def __init__(self, *, config: DynamicAuthConfig | None = None, tokens: TokenReviewAuthenticator | None,
                 reviews: SubjectAccessReviewAuthorizer | None, mode: str, anonymous_auth: bool,
                 always_allow_paths: list[str], always_allow_groups: list[str], peer_der: PeerDER,
                 tls: ClientCATarget | None, clients: list[KubeClient] | None = None):
        self.tokens = tokens
        self.reviews = reviews
        self.mode = mode
        self.anonymous_auth = anonymous_auth
        self.always_allow_paths = tuple(always_allow_paths)
        self.always_allow_groups = frozenset(always_allow_groups)
        self.paths = PathAuthorizer(always_allow_paths)
        self.peer_der = peer_der
        self.tls = tls
        self.clients = clients or []
        self._request_header: RequestHeaderAuthenticator | None = None
        self._x509 = X509Authenticator([])
        self._trusted_pem = b""
        self.config = config
        if config is not None:
            config.on_change = self.apply
            self.apply(config.settings)

    # --- settings -----------------------------------------------------------------------
    def apply(self, settings: AuthSettings) -> None:
        """New CA bundles / request-header settings: effective for the next request (and,
        through the TLS layer, the next handshake)."""
        self._request_header = RequestHeaderAuthenticator(settings.request_header) if settings.request_header \
            else None
        self._x509.set_cas(list(settings.client_cas))
        pem = settings.trusted_pem()
        if pem != self._trusted_pem:
            self._trusted_pem = pem
            if self.tls is not None:
                try:
                    self.tls.set_client_cas(pem)
                except (ssl.SSLError, ValueError) as e:  # parsed fine above; OpenSSL refusing it is a bug
                    log.error("the TLS layer refused the client CA bundle: %s", e)
            log.info("client CA bundles updated: %d request-header CA(s), %d client CA(s)",
                     len(settings.request_header.cas) if settings.request_header else 0, len(settings.client_cas))

    def client_cas_pem(self) -> bytes:
        """The union of the request-header CA and the client CA: what the TLS layer must
        trust for client certificates."""
        return self._trusted_pem

    # --- authentication -----------------------------------------------------------------
    async def authenticate(self, request: web.Request) -> UserInfo | None:
        """The identity of ``request``; None for anonymous (the caller applies
        ``anonymous_auth``). Raises 401 when a credential was presented and rejected."""
        der = self.peer_der(request)
        errors: list[str] = []
        if self._request_header is not None:
            user, err = self._request_header.authenticate(der, request.headers)
            if user is not None:
                return user.with_authenticated_group()
            if err:
                errors.append(err)
        user, err = self._x509.check_der(der)
        if user is not None:
            return user.with_authenticated_group()
        if err:
            errors.append(err)
        token = bearer_token(request.headers.get("Authorization", ""))
        if token and self.tokens is not None:
            res = await self.tokens.authenticate(token)
            if res.user is not None:
                return res.user.with_authenticated_group()
            errors.append(res.error or "invalid bearer token")
        if errors:
            log.warning("unable to authenticate the request to %s: %s", request.path, "; ".join(errors))
            raise E.Unauthorized()
        return None

    def strip_credentials(self, request: web.Request) -> web.Request:
        """``request`` without ``Authorization`` and the ``X-Remote-*`` / configured
        request-header headers (aiohttp requests are immutable: a clone sharing the body
        stream and the connection). Everything after authentication must use the clone."""
        cfg = self._request_header.cfg if self._request_header is not None else None
        kept = strip_auth_headers(request.headers, cfg)
        return request if len(kept) == len(request.headers) else request.clone(headers=kept)

    # --- authorization ------------------------------------------------------------------
    async def authorize(self, user: UserInfo, info: RequestInfo) -> tuple[bool, str]:
        if self.mode == "AlwaysAllow":
            return True, ""
        if self.always_allow_groups.intersection(user.groups):
            return True, ""
        if self.paths.allows(info):
            return True, ""
        if self.reviews is None:
            return False, ""
        d = await self.reviews.authorize(user, info)
        if d.allowed:
            return True, d.reason
        if d.error:
            raise E.StatusError(f'Internal Server Error: "{info.path}": {d.error}', code=500, reason="InternalError")
        return False, d.reason

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Start watching the ConfigMap and the CA files; waits (bounded) for the first
        ConfigMap list so the first requests see the cluster's settings."""
        if self.config is not None:
            await self.config.start(CONFIGMAP_SYNC_TIMEOUT)

    async def stop(self) -> None:
        if self.config is not None:
            await self.config.stop()
        for c in self.clients:
            await c.close()

    def healthy(self) -> tuple[bool, str]:
        """The authentication settings are loaded (the ConfigMap listed at least once)."""
        return self.config.loaded() if self.config is not None else (True, "")

    def render_metrics(self) -> str:
        """Prometheus text for the review counters and the cache hit/miss counters."""
        out: list[str] = []

        def counter(name: str, help_: str, samples: list[tuple[str, str, int]]) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} counter")
            out.extend(f'{name}{{{k}="{v}"}} {n}' for k, v, n in samples)

        if self.tokens is not None:
            counter("authentication_token_cache_request_total", "Counter of bearer token cache lookups.",
                    [("status", "hit", self.tokens.cache.hits), ("status", "miss", self.tokens.cache.misses)])
            counter("apiserver_delegated_authn_request_total", "Number of HTTP requests partitioned by status "
                    "code for delegated authentication (TokenReview).",
                    [("code", c, n) for c, n in sorted(self.tokens.review_codes.items())])
        if self.reviews is not None:
            counter("apiserver_delegated_authz_cache_request_total", "Counter of SubjectAccessReview cache lookups.",
                    [("status", "hit", self.reviews.cache.hits), ("status", "miss", self.reviews.cache.misses)])
            counter("apiserver_delegated_authz_request_total", "Number of HTTP requests partitioned by status "
                    "code for delegated authorization (SubjectAccessReview).",
                    [("code", c, n) for c, n in sorted(self.reviews.review_codes.items())])
        return "\n".join(out) + ("\n" if out else "")


async def _client(path: str | None, what: str, cache: dict[str, KubeClient]) -> KubeClient:
    key = path or "<in-cluster>"
    if key not in cache:
        try:
            cache[key] = await KubeClient.load(path)
        except KubeConfigError as e:
            from ..options.errors import FlagError
            raise FlagError(f"{what}: {e}") from None
    return cache[key]


async def build_cluster_auth(args: Any, tls: ClientCATarget | None, *,
                             peer_der: PeerDER | None = None) -> ClusterAuth:
    """Build the cluster-mode :class:`ClusterAuth` from the ``serve`` flags.

    Raises :class:`~extserver.options.errors.FlagError` for an unusable configuration (a kubeconfig
    that does not load, a bad CA file, ``Delegated`` authorization with no way to reach
    the apiserver, no authentication method at all)."""
    from ..options.errors import FlagError
    if peer_der is None:
        from ..server.tls import peer_der as tls_peer_der
        peer_der = tls_peer_der
    cluster = in_cluster()
    clients: dict[str, KubeClient] = {}
    try:
        authn_client = None
        if args.authentication_kubeconfig or cluster:
            authn_client = await _client(args.authentication_kubeconfig, "--authentication-kubeconfig", clients)
        else:
            log.warning("no --authentication-kubeconfig and not in a cluster: bearer tokens are not accepted and "
                        "the %s/%s configmap is not read", CONFIGMAP_NAMESPACE, CONFIGMAP_NAME)
        mode = args.authorization_mode or "Delegated"
        authz_client = None
        if mode == "Delegated":
            if not (args.authorization_kubeconfig or cluster):
                raise FlagError("--authorization-mode=Delegated needs --authorization-kubeconfig (or an in-cluster "
                                "service account); use --authorization-mode=AlwaysAllow to allow every request")
            authz_client = await _client(args.authorization_kubeconfig, "--authorization-kubeconfig", clients)

        lookup = authn_client is not None and not args.authentication_skip_lookup
        need_cm = lookup and not (args.client_ca_file and args.requestheader_client_ca_file)
        informer = Informer(authn_client, CONFIGMAP_PATH, name=f"configmap {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}",
                            field_selector=f"metadata.name={CONFIGMAP_NAME}") \
            if need_cm and authn_client is not None else None
        rh_flags = HeaderSettings(allowed_names=tuple(args.requestheader_allowed_names),
                                  username_headers=tuple(args.requestheader_username_headers),
                                  uid_headers=tuple(getattr(args, "requestheader_uid_headers", None) or ()),
                                  group_headers=tuple(args.requestheader_group_headers),
                                  extra_prefixes=tuple(args.requestheader_extra_headers_prefix))
        config = DynamicAuthConfig(
            client_ca_file=CAFile(args.client_ca_file, "--client-ca-file") if args.client_ca_file else None,
            rh_ca_file=CAFile(args.requestheader_client_ca_file, "--requestheader-client-ca-file")
            if args.requestheader_client_ca_file else None,
            rh_flags=rh_flags, configmap=informer, on_change=lambda s: None)
        try:
            await config.load_files()
        except (OSError, CABundleError) as e:
            raise FlagError(str(e)) from None

        anonymous = True if args.anonymous_auth is None else bool(args.anonymous_auth)
        if not (anonymous or authn_client or args.client_ca_file or args.requestheader_client_ca_file):
            raise FlagError("no authentication method configured (give --authentication-kubeconfig, "
                            "--client-ca-file or --requestheader-client-ca-file, or enable --anonymous-auth)")
        tokens = TokenReviewAuthenticator(authn_client, ttl=args.authentication_token_webhook_cache_ttl) \
            if authn_client else None
        reviews = SubjectAccessReviewAuthorizer(
            authz_client, allow_ttl=args.authorization_webhook_cache_authorized_ttl,
            deny_ttl=args.authorization_webhook_cache_unauthorized_ttl) if authz_client else None
        try:
            return ClusterAuth(config=config, tokens=tokens, reviews=reviews, mode=mode, anonymous_auth=anonymous,
                               always_allow_paths=list(args.authorization_always_allow_paths),
                               always_allow_groups=list(args.authorization_always_allow_groups),
                               peer_der=peer_der, tls=tls, clients=list(clients.values()))
        except ValueError as e:
            raise FlagError(f"--authorization-always-allow-paths: {e}") from None
    except BaseException:
        for c in clients.values():
            await c.close()
        raise
