"""``NamespaceLifecycle`` admission, as k8s.io/apiserver's plugin of that name: no new
objects in a namespace that does not exist or is being terminated.

Namespaces are list+watched from the main apiserver (``--kubeconfig`` or the in-cluster
service account), so an admitted create costs no request. Only a namespace missing from
the watched list is looked up once directly (after a short wait for the watch), as kube
does, so a namespace created a moment ago is not refused."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..api import AdmissionAttributes, AdmissionPlugin
from ..auth.informer import Informer
from ..auth.kubeclient import ApiError, KubeClient, KubeConfigError
from ..machinery import errors as E

log = logging.getLogger("extserver.admission")

NAMESPACES = "/api/v1/namespaces"
TERMINATING = "Terminating"
#: how long a create waits for the namespace watch to be synced (kube: 10 s)
READY_TIMEOUT = 10.0
#: how long a create into a namespace the watch does not know waits before the direct look-up
MISSING_NAMESPACE_WAIT = 0.05


def _phase(ns: dict) -> str:
    return str((ns.get("status") or {}).get("phase") or "Active")


def _object_name(attrs: AdmissionAttributes) -> str:
    """The name kube's admission errors report: the request's name, else the object's name
    or generateName, else ``Unknown``."""
    if attrs.name:
        return attrs.name
    md = getattr(attrs.object, "metadata", None)
    return (getattr(md, "name", None) or getattr(md, "generate_name", None) or "Unknown") if md else "Unknown"


class NamespaceLifecycle(AdmissionPlugin):
    name = "NamespaceLifecycle"
    operations = frozenset({"CREATE"})

    def __init__(self, client: KubeClient, *, ready_timeout: float = READY_TIMEOUT,
                 missing_wait: float = MISSING_NAMESPACE_WAIT, own_client: bool = False):
        self.client = client
        self.ready_timeout = ready_timeout
        self.missing_wait = missing_wait
        self._own_client = own_client
        self.informer = Informer(client, NAMESPACES, name="namespaces", transform=_phase)
        self.lookups = 0  # direct GETs made for namespaces the watch did not know

    def handles(self, attrs: AdmissionAttributes) -> bool:
        return attrs.operation == "CREATE" and bool(attrs.namespace)

    async def start(self, server: Any) -> None:
        self.informer.start()

    async def stop(self) -> None:
        await self.informer.stop()
        if self._own_client:
            await self.client.close()

    def ready(self) -> bool:
        return self.informer.synced.is_set()

    def healthy(self) -> tuple[bool, str]:
        """For ``/readyz`` (informers synced)."""
        if self.ready():
            return True, ""
        return False, f"namespaces not synced: {self.informer.last_error or 'not listed yet'}"

    def _forbidden(self, attrs: AdmissionAttributes, detail: str) -> E.StatusError:
        return E.Forbidden(attrs.group, attrs.resource, _object_name(attrs), detail)

    async def admit(self, attrs: AdmissionAttributes) -> None:
        if not self.handles(attrs):
            return
        ns = attrs.namespace
        if not self.ready() and not await self.informer.wait_synced(self.ready_timeout):
            raise self._forbidden(attrs, "not yet ready to handle request")
        phase = self.informer.store.get(ns)
        if phase is None:
            await asyncio.sleep(self.missing_wait)
            phase = self.informer.store.get(ns)
        if phase is None:
            phase = await self._lookup(ns)
        if phase == TERMINATING:
            err = self._forbidden(attrs, f"unable to create new content in namespace {ns} because it is being "
                                         f"terminated")
            err.causes.append(E.Cause("NamespaceTerminating", f"namespace {ns} is being terminated",
                                      "metadata.namespace"))
            raise err

    async def _lookup(self, ns: str) -> str:
        """As a last resort, ask the apiserver (404 -> the namespace's NotFound)."""
        self.lookups += 1
        try:
            obj = await self.client.request("GET", f"{NAMESPACES}/{ns}", timeout=10.0)
        except ApiError as e:
            if e.code == 404:
                raise E.NotFound("", "namespaces", ns) from None
            raise E.InternalError(str(e)) from None
        return _phase(obj)


async def namespace_lifecycle_from_args(args: Any) -> NamespaceLifecycle | None:
    """The plugin for ``extserver serve``: with ``--kubeconfig``, or in a cluster; None
    otherwise (local mode has no namespaces to check)."""
    from ..auth.delegating import in_cluster
    if not (args.kubeconfig or in_cluster()):
        return None
    try:
        client = await KubeClient.load(args.kubeconfig)
    except KubeConfigError as e:
        from ..options.errors import FlagError
        raise FlagError(f"--kubeconfig: {e}") from None
    return NamespaceLifecycle(client, own_client=True)
