"""Where the authentication settings come from, kept current while the server runs.

As k8s.io/apiserver's ``DelegatingAuthenticationOptions``:
- client CA: ``--client-ca-file`` (re-read when the file changes), else the
  ``client-ca-file`` key of ``kube-system/extension-apiserver-authentication``;
- request header: with ``--requestheader-client-ca-file``, that file plus the
  ``--requestheader-*`` flags; else the ConfigMap's ``requestheader-*`` keys
  (``requestheader-client-ca-file``; JSON lists in ``requestheader-allowed-names``,
  ``-username-headers``, ``-uid-headers``, ``-group-headers``, ``-extra-headers-prefix``).
The ConfigMap is used only when a client for the main apiserver exists and lookup is not
skipped; it is list+watched. A bundle that disappears or does not parse keeps the last
good value (as kube's dynamic CA controllers do)."""
from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass
from typing import Callable

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .informer import Informer
from .requestheader import RequestHeaderConfig
from .x509 import load_ca_bundle

log = logging.getLogger("extserver.auth")

CONFIGMAP_NAMESPACE = "kube-system"
CONFIGMAP_NAME = "extension-apiserver-authentication"
CONFIGMAP_PATH = f"/api/v1/namespaces/{CONFIGMAP_NAMESPACE}/configmaps"
CM_CLIENT_CA = "client-ca-file"
CM_RH_CA = "requestheader-client-ca-file"
CM_RH_KEYS = {"allowed_names": "requestheader-allowed-names",
              "username_headers": "requestheader-username-headers",
              "uid_headers": "requestheader-uid-headers",
              "group_headers": "requestheader-group-headers",
              "extra_prefixes": "requestheader-extra-headers-prefix"}


class CABundleError(ValueError):
    pass


def parse_ca_bundle(pem: bytes, what: str) -> tuple[x509.Certificate, ...]:
    """The certificates of ``pem``; an empty or malformed bundle is an error (kube: missing
    content for CA bundle)."""
    try:
        certs = load_ca_bundle(pem)
    except ValueError:
        from ..options.pemfiles import pem_problem
        raise CABundleError(f"{what}: {pem_problem(pem, 'CERTIFICATE') or 'not a PEM certificate bundle'}") from None
    if not certs:
        raise CABundleError(f"{what}: missing content for CA bundle")
    return tuple(certs)


def union_pem(*bundles: tuple[x509.Certificate, ...]) -> bytes:
    """The certificates of every bundle, each once, as PEM (what the TLS layer trusts)."""
    seen: set[bytes] = set()
    out: list[bytes] = []
    for bundle in bundles:
        for c in bundle:
            der = c.public_bytes(Encoding.DER)
            if der not in seen:
                seen.add(der)
                out.append(c.public_bytes(Encoding.PEM))
    return b"".join(out)


class CAFile:
    """A CA bundle file given by flag; :meth:`poll` re-reads it when its stat changes."""

    def __init__(self, path: str, what: str):
        self.path = path
        self.what = what
        self.certs: tuple[x509.Certificate, ...] = ()
        self._sig: tuple | None = None

    def _stat(self) -> tuple | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    def load_blocking(self) -> bool:
        """Read the file if it changed since the last read. True when the certificates
        changed; raises CABundleError/OSError when the file is unusable."""
        sig = self._stat()
        if sig is not None and sig == self._sig:
            return False
        with open(self.path, "rb") as f:
            pem = f.read()
        certs = parse_ca_bundle(pem, f"{self.what} {self.path}")
        self._sig = sig
        changed = [c.public_bytes(Encoding.DER) for c in certs] != [c.public_bytes(Encoding.DER)
                                                                     for c in self.certs]
        self.certs = certs
        return changed

    async def poll(self) -> bool:
        try:
            return await asyncio.to_thread(self.load_blocking)
        except (OSError, CABundleError) as e:
            log.error("%s: keeping the previous content: %s", self.what, e)
            return False


def _json_list(raw: str | None, key: str) -> tuple[str, ...]:
    if not raw:
        return ()
    v = json.loads(raw)
    if v is None:
        return ()
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError(f"{key}: not a JSON list of strings")
    return tuple(v)


@dataclass(frozen=True, slots=True)
class HeaderSettings:
    allowed_names: tuple[str, ...] = ()
    username_headers: tuple[str, ...] = ()
    uid_headers: tuple[str, ...] = ()
    group_headers: tuple[str, ...] = ()
    extra_prefixes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """One consistent view: the request-header config (None: request-header auth off) and
    the client CA certificates."""

    request_header: RequestHeaderConfig | None
    client_cas: tuple[x509.Certificate, ...]

    def trusted_pem(self) -> bytes:
        rh = self.request_header.cas if self.request_header else ()
        return union_pem(rh, self.client_cas)


class DynamicAuthConfig:
    """Merges the flag files and the watched ConfigMap; calls ``on_change(settings)``
    whenever the effective settings change."""

    POLL_SECONDS = 1.0

    def __init__(self, *, client_ca_file: CAFile | None, rh_ca_file: CAFile | None, rh_flags: HeaderSettings,
                 configmap: Informer | None, on_change: Callable[[AuthSettings], None]):
        self.client_ca_file = client_ca_file
        self.rh_ca_file = rh_ca_file
        self.rh_flags = rh_flags
        self.configmap = configmap
        self.on_change = on_change
        # last good values from the ConfigMap
        self.cm_client_cas: tuple[x509.Certificate, ...] = ()
        self.cm_rh_cas: tuple[x509.Certificate, ...] = ()
        self.cm_headers: HeaderSettings | None = None
        self.settings = self._compute()
        self._poller: asyncio.Task | None = None
        if configmap is not None:
            configmap.on_change = self._configmap_changed

    # --- sources ------------------------------------------------------------------------
    async def load_files(self) -> None:
        """Initial read of the flag files (raises CABundleError/OSError when one is
        unusable: a startup error)."""
        for f in (self.client_ca_file, self.rh_ca_file):
            if f is not None:
                await asyncio.to_thread(f.load_blocking)
        self._update()

    def _configmap_changed(self) -> None:
        assert self.configmap is not None
        cm = self.configmap.store.get(f"{CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}")
        if cm is None:
            log.warning("configmap %s/%s is missing; keeping the last authentication settings",
                        CONFIGMAP_NAMESPACE, CONFIGMAP_NAME)
            return
        data = cm.get("data") or {}
        where = f"configmap {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}"
        for key, attr in ((CM_CLIENT_CA, "cm_client_cas"), (CM_RH_CA, "cm_rh_cas")):
            try:
                setattr(self, attr, parse_ca_bundle(str(data.get(key) or "").encode(), f"{where} key {key}"))
            except CABundleError as e:
                if data.get(key):
                    log.error("%s; keeping the previous content", e)
        try:
            self.cm_headers = HeaderSettings(**{a: _json_list(data.get(k), k) for a, k in CM_RH_KEYS.items()})
        except ValueError as e:
            log.error("%s: %s; keeping the previous request-header settings", where, e)
        self._update()

    # --- the effective settings ---------------------------------------------------------
    def _compute(self) -> AuthSettings:
        client_cas = self.client_ca_file.certs if self.client_ca_file else self.cm_client_cas
        rh: RequestHeaderConfig | None = None
        if self.rh_ca_file is not None:
            cas, h = self.rh_ca_file.certs, self.rh_flags
        elif self.configmap is not None:
            cas, h = self.cm_rh_cas, self.cm_headers or HeaderSettings()
        else:
            cas, h = (), HeaderSettings()
        if cas:
            rh = RequestHeaderConfig(cas=cas, allowed_names=h.allowed_names, username_headers=h.username_headers,
                                     uid_headers=h.uid_headers, group_headers=h.group_headers,
                                     extra_prefixes=h.extra_prefixes, ca_pem=union_pem(cas))
        return AuthSettings(rh, client_cas)

    def _update(self) -> None:
        new = self._compute()
        if new != self.settings:
            self.settings = new
            self.on_change(new)

    # --- lifecycle ----------------------------------------------------------------------
    def loaded(self) -> tuple[bool, str]:
        if self.configmap is not None and not self.configmap.synced.is_set():
            why = self.configmap.last_error or "not listed yet"
            return False, f"configmap {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME} not loaded: {why}"
        return True, ""

    async def start(self, sync_timeout: float) -> None:
        if self.configmap is not None:
            self.configmap.start()
            if not await self.configmap.wait_synced(sync_timeout):
                log.warning("configmap %s/%s not loaded after %.0fs: %s", CONFIGMAP_NAMESPACE, CONFIGMAP_NAME,
                            sync_timeout, self.configmap.last_error or "no answer")
        if (self.client_ca_file or self.rh_ca_file) and self._poller is None:
            self._poller = asyncio.create_task(self._poll_files(), name="auth-ca-files")

    async def _poll_files(self) -> None:
        while True:  # until stop() cancels it; one stat per file per period
            await asyncio.sleep(self.POLL_SECONDS)
            changed = False
            for f in (self.client_ca_file, self.rh_ca_file):
                if f is not None and await f.poll():
                    log.info("%s %s changed; reloaded", f.what, f.path)
                    changed = True
            if changed:
                self._update()

    async def stop(self) -> None:
        if self.configmap is not None:
            await self.configmap.stop()
        task, self._poller = self._poller, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
