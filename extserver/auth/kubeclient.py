"""A small async client for the main kube-apiserver (TokenReview, SubjectAccessReview,
ConfigMap and Namespace list/watch).

Connection settings (host, CA, client certificate, bearer token, ``tls-server-name``) are
read with the official ``kubernetes`` package's config loaders, from a kubeconfig file or
the in-cluster service account; the HTTP itself is done with ``aiohttp`` so nothing blocks
the event loop. Every request has a timeout. Credentials are never logged."""
from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

import aiohttp
import orjson

from .. import __version__

log = logging.getLogger("extserver.auth")

T = TypeVar("T")

#: how long a bearer token read from the kubeconfig / service-account file is reused before
#: the loader's refresh hook is consulted again (the in-cluster token file rotates)
TOKEN_RECHECK_SECONDS = 30.0
#: the largest single JSON line accepted from a watch stream
MAX_WATCH_LINE = 16 * 1024 * 1024


class KubeConfigError(Exception):
    """No usable kubeconfig / in-cluster configuration."""


class ApiError(Exception):
    """The apiserver answered with a non-2xx status (``code``), or could not be reached
    (``code`` 0)."""

    def __init__(self, code: int, message: str, *, reason: str = "", retry_after: float | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """As client-go's ``webhook.DefaultShouldRetry``: a reset connection, an internal
        error, a timeout, 429, or an explicit ``Retry-After``."""
        return (self.code == 0 and self.reason == "ConnectionReset") or self.code in (429, 500, 504) \
            or self.retry_after is not None


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential retry schedule (``wait.Backoff``); kube's webhook default is
    500ms x1.5, 20% jitter, 5 attempts."""

    duration: float = 0.5
    factor: float = 1.5
    jitter: float = 0.2
    steps: int = 5

    def delays(self) -> list[float]:
        out, d = [], self.duration
        for _ in range(self.steps - 1):
            out.append(d * (1 + random.random() * self.jitter))
            d *= self.factor
        return out


DEFAULT_WEBHOOK_BACKOFF = Backoff()


async def with_retries(call: Callable[[], Awaitable[T]], backoff: Backoff, deadline: float) -> T:
    """Run ``call`` until it succeeds, fails with a non-retryable :class:`ApiError`, the
    schedule is exhausted or ``deadline`` (``time.monotonic``) passes."""
    delays = backoff.delays()
    for attempt in range(backoff.steps):
        try:
            return await call()
        except ApiError as e:
            if not e.retryable or attempt >= len(delays):
                raise
            wait = e.retry_after if e.retry_after is not None else delays[attempt]
            if time.monotonic() + wait >= deadline:
                raise
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


async def post_review(client: "KubeClient", path: str, body: dict, *, timeout: float, backoff: Backoff,
                      on_attempt: Callable[[str], None]) -> dict:
    """POST a review (TokenReview, SubjectAccessReview) with kube's webhook retries within
    ``timeout``; ``on_attempt`` gets each attempt's status code ("201", "500", "<error>")."""
    deadline = time.monotonic() + timeout

    async def call() -> dict:
        try:
            out = await client.request("POST", path, body=body, timeout=max(0.1, deadline - time.monotonic()))
        except ApiError as e:
            on_attempt(str(e.code) if e.code else "<error>")
            raise
        on_attempt("201")
        return out

    return await with_retries(call, backoff, deadline)


def _load_config_blocking(kubeconfig: str | None) -> tuple[Any, ssl.SSLContext | bool, str | None]:
    """Runs in a thread: the kubernetes package reads files (and may run exec plugins)."""
    from kubernetes import client, config

    cfg = client.Configuration()
    try:
        if kubeconfig:
            config.load_kube_config(config_file=kubeconfig, client_configuration=cfg, persist_config=False)
        else:
            config.load_incluster_config(client_configuration=cfg)
    except Exception as e:  # the loaders raise ConfigException, YAML, OS and type errors alike
        where = kubeconfig or "in-cluster service account"
        raise KubeConfigError(f"cannot load {where}: {e}") from None
    if not str(cfg.host).startswith(("https://", "http://")):
        raise KubeConfigError(f"{kubeconfig or 'in-cluster config'}: server {cfg.host!r} is not an http(s) URL")
    ctx: ssl.SSLContext | bool = False
    if str(cfg.host).startswith("https://"):
        try:
            if cfg.verify_ssl:
                cadata = getattr(cfg, "ca_cert_data", None)
                ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None,
                                                 cadata=cadata.decode() if isinstance(cadata, bytes) else cadata)
            else:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if cfg.cert_file:
                ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
        except (OSError, ssl.SSLError, ValueError) as e:
            raise KubeConfigError(f"{kubeconfig or 'in-cluster config'}: TLS settings: {e}") from None
    return cfg, ctx, getattr(cfg, "tls_server_name", None) or None


class KubeClient:
    """JSON over HTTPS to the main apiserver. Create with :meth:`load` inside the event loop."""

    def __init__(self, host: str, ssl_context: ssl.SSLContext | bool, server_hostname: str | None,
                 config: Any, *, source: str):
        self.host = host.rstrip("/")
        self.source = source
        self._ssl = ssl_context
        self._server_hostname = server_hostname
        self._config = config
        self._auth_header: str | None = None
        self._auth_checked = -1e18
        self._auth_lock = asyncio.Lock()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64, ssl=ssl_context),
            headers={"User-Agent": f"extserver/{__version__}", "Accept": "application/json"})

    @classmethod
    async def load(cls, kubeconfig: str | None) -> "KubeClient":
        """From ``kubeconfig``, or the in-cluster service account when it is None."""
        cfg, ctx, sni = await asyncio.to_thread(_load_config_blocking, kubeconfig)
        client = cls(str(cfg.host), ctx, sni, cfg, source=kubeconfig or "in-cluster")
        await client._authorization()
        return client

    async def close(self) -> None:
        await self._session.close()

    async def _authorization(self) -> str | None:
        """The ``Authorization`` header value, refreshed through the loader's hook (which may
        read the rotating service-account token file) at most every few seconds, in a thread."""
        if time.monotonic() - self._auth_checked < TOKEN_RECHECK_SECONDS:
            return self._auth_header
        async with self._auth_lock:
            if time.monotonic() - self._auth_checked >= TOKEN_RECHECK_SECONDS:
                settings = await asyncio.to_thread(self._config.auth_settings)
                value = settings.get("BearerToken", {}).get("value")
                if value and not value.lower().startswith("bearer "):
                    value = "Bearer " + value
                self._auth_header = value or None
                self._auth_checked = time.monotonic()
        return self._auth_header

    async def _headers(self) -> dict[str, str]:
        h = {}
        auth = await self._authorization()
        if auth:
            h["Authorization"] = auth
        return h

    def _kw(self) -> dict[str, Any]:
        return {"server_hostname": self._server_hostname} if self._server_hostname else {}

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                      body: Any = None, timeout: float = 10.0) -> dict:
        """One request; returns the decoded JSON body of a 2xx answer, raises
        :class:`ApiError` otherwise (``code`` 0 when the server could not be reached)."""
        headers = await self._headers()
        data = None
        if body is not None:
            data = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(method, self.host + path, params=params, data=data,
                                             headers=headers, timeout=aiohttp.ClientTimeout(total=timeout),
                                             **self._kw()) as resp:
                raw = await resp.read()
                if resp.status >= 300:
                    raise _api_error(resp.status, raw, resp.headers.get("Retry-After"))
        except ApiError:
            raise
        except (aiohttp.ServerDisconnectedError, ConnectionResetError) as e:
            raise ApiError(0, f"{method} {path}: connection reset: {e}", reason="ConnectionReset") from None
        except asyncio.TimeoutError:
            raise ApiError(0, f"{method} {path}: timed out after {timeout:g}s", reason="Timeout") from None
        except aiohttp.ClientError as e:
            raise ApiError(0, f"{method} {path}: {e}", reason="ConnectionError") from None
        try:
            out = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ApiError(0, f"{method} {path}: the answer is not JSON", reason="BadResponse") from None
        if not isinstance(out, dict):
            raise ApiError(0, f"{method} {path}: the answer is not a JSON object", reason="BadResponse")
        return out

    async def watch(self, path: str, params: dict[str, str], *, connect_timeout: float = 10.0,
                    read_timeout: float) -> AsyncIterator[dict]:
        """Stream the ``WatchEvent`` objects of a ``?watch=1`` request. Ends when the server
        closes the stream; a read stalled for ``read_timeout`` raises :class:`ApiError`."""
        headers = await self._headers()
        timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_read=read_timeout)
        try:
            async with self._session.get(self.host + path, params={**params, "watch": "1"}, headers=headers,
                                         timeout=timeout, **self._kw()) as resp:
                if resp.status >= 300:
                    raise _api_error(resp.status, await resp.read(), resp.headers.get("Retry-After"))
                buf = b""
                async for chunk in resp.content.iter_any():
                    buf += chunk
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        if line.strip():
                            yield orjson.loads(line)
                    if len(buf) > MAX_WATCH_LINE:
                        raise ApiError(0, f"watch {path}: event larger than {MAX_WATCH_LINE} bytes",
                                       reason="BadResponse")
                if buf.strip():
                    yield orjson.loads(buf)
        except ApiError:
            raise
        except orjson.JSONDecodeError:
            raise ApiError(0, f"watch {path}: malformed event", reason="BadResponse") from None
        except asyncio.TimeoutError:
            raise ApiError(0, f"watch {path}: no data for {read_timeout:g}s", reason="Timeout") from None
        except (aiohttp.ClientError, ConnectionResetError) as e:
            raise ApiError(0, f"watch {path}: {e}", reason="ConnectionError") from None


def _api_error(code: int, raw: bytes, retry_after: str | None) -> ApiError:
    reason, message = "", raw[:512].decode("utf-8", "replace").strip()
    try:
        st = orjson.loads(raw)
        if isinstance(st, dict) and st.get("kind") == "Status":
            reason, message = str(st.get("reason") or ""), str(st.get("message") or message)
    except orjson.JSONDecodeError:
        pass
    ra: float | None = None
    if retry_after:
        try:
            ra = float(retry_after)
        except ValueError:
            ra = None
    return ApiError(code, message or f"HTTP {code}", reason=reason, retry_after=ra)
