"""The Kubernetes objects a request is about, read from the main apiserver.

For ``name = *`` the adapter must know which objects the label selector matches before it
can ask Prometheus about them: upstream lists them live from the cluster on each request
(``helpers.ListObjectNames``), and so does :class:`LiveObjects` — one list call with the
``labelSelector``, any resource the mapper knows. Pods are the exception: an HPA asks for
them on every sync, so they come from the framework's pod informer
(:class:`~extserver.providers.resource_metrics.ClusterObjects`, shared with metrics.k8s.io;
running pods only — a pod that is not running has no series to report anyway)."""
from __future__ import annotations

import datetime as _dt

from ...auth.kubeclient import ApiError, KubeClient
from ...machinery import errors as E
from ...machinery.selectors import LabelSelector
from ..mapper import ResourceKind
from ..metrics_api import ObjectMeta
from ..provider import SourceUnavailable


def _parse_time(s: str | None) -> _dt.datetime | None:
    if not s:
        return None
    try:
        return _dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        return None


class LiveObjects:
    """An :class:`~extserver.providers.metrics_api.ObjectLister` of one resource."""

    def __init__(self, client: KubeClient, kind: ResourceKind, *, timeout: float = 5.0):
        self.client = client
        self.kind = kind
        self.timeout = timeout

    def _path(self, namespace: str, name: str = "") -> str:
        base = f"/api/{self.kind.version}" if not self.kind.group else f"/apis/{self.kind.group}/{self.kind.version}"
        if self.kind.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.kind.plural}"
        return base + (f"/{name}" if name else "")

    @staticmethod
    def _meta(obj: dict) -> ObjectMeta:
        md = obj.get("metadata") or {}
        return ObjectMeta(name=md.get("name", ""), namespace=md.get("namespace", ""),
                          labels=dict(md.get("labels") or {}),
                          creation_timestamp=_parse_time(md.get("creationTimestamp")))

    def _failed(self, e: ApiError) -> Exception:
        what = f"unable to list matching resources: {self.kind.plural}: {e.message}"
        return SourceUnavailable(what) if e.code in (0, 429, 503, 504) else E.InternalError(what)

    async def list(self, namespace: str, selector: LabelSelector | None) -> list[ObjectMeta]:
        params = {}
        if selector is not None and not selector.empty:
            params["labelSelector"] = str(selector)
        try:
            doc = await self.client.request("GET", self._path(namespace), params=params, timeout=self.timeout)
        except ApiError as e:
            raise self._failed(e) from None
        out = [self._meta(o) for o in doc.get("items") or []]
        if selector is not None:  # a stand-in or an old server may ignore the parameter
            out = [o for o in out if selector.matches(o.labels)]
        return out

    async def get(self, namespace: str, name: str) -> ObjectMeta | None:
        try:
            return self._meta(await self.client.request("GET", self._path(namespace, name), timeout=self.timeout))
        except ApiError as e:
            if e.code == 404:
                return None
            raise self._failed(e) from None
