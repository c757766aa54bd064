"""Resource names as the metrics APIs' clients spell them -> the canonical group-resource.

custom-metrics-apiserver resolves ``{resource}`` in a URL (``pods``, ``pod``,
``deployments.apps``, ``Deployment.apps``) with a RESTMapper built from the cluster's
discovery (``CustomMetricInfo.Normalized``: ``ResourceFor`` then ``KindFor``). Here the
mapper is a table: the built-in kinds an HPA can target or a metric can describe, the
kinds of the groups this server serves, and whatever a provider adds
(:meth:`ResourceMapper.add`). The matching rules are ``meta.DefaultRESTMapper``'s: the
resource is lower-cased, a plural or a singular name matches, a given group must match
exactly, without a group the first match in priority order (core first) wins."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .metrics_api import GroupResource, ObjectReference


@dataclass(frozen=True, slots=True)
class ResourceKind:
    """One mapping: where a resource lives and what its objects are called."""

    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool

    @property
    def group_resource(self) -> GroupResource:
        return GroupResource(self.group, self.plural)

    @property
    def api_version(self) -> str:
        """As custom-metrics-apiserver's ``helpers.ReferenceFor`` writes it: ``group + "/" +
        version`` even for the core group (``"/v1"``), which is what prometheus-adapter and
        every adapter built on the library send in ``describedObject``."""
        return f"{self.group}/{self.version}"


def _kinds(group: str, version: str, namespaced: bool, *kinds: str) -> list[ResourceKind]:
    out = []
    for k in kinds:
        singular = k.lower()
        if singular.endswith("y") and not singular.endswith("ey"):
            plural = singular[:-1] + "ies"
        elif singular.endswith(("s", "x", "ch")):
            plural = singular + "es"
        else:
            plural = singular + "s"
        out.append(ResourceKind(group, version, k, plural, singular, namespaced))
    return out


#: the built-in kinds, core first (the order decides a group-less name that several groups use)
BUILTIN_KINDS: tuple[ResourceKind, ...] = tuple(
    _kinds("", "v1", True, "Pod", "Service", "ReplicationController", "PersistentVolumeClaim", "ConfigMap",
           "Secret", "ServiceAccount", "Event", "LimitRange", "ResourceQuota", "PodTemplate")
    + [ResourceKind("", "v1", "Endpoints", "endpoints", "endpoints", True)]
    + _kinds("", "v1", False, "Node", "Namespace", "PersistentVolume")
    + _kinds("apps", "v1", True, "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "ControllerRevision")
    + _kinds("batch", "v1", True, "Job", "CronJob")
    + _kinds("autoscaling", "v2", True, "HorizontalPodAutoscaler")
    + _kinds("networking.k8s.io", "v1", True, "Ingress", "NetworkPolicy")
    + _kinds("networking.k8s.io", "v1", False, "IngressClass")
    + _kinds("policy", "v1", True, "PodDisruptionBudget")
    + _kinds("discovery.k8s.io", "v1", True, "EndpointSlice")
    + _kinds("coordination.k8s.io", "v1", True, "Lease")
    + _kinds("storage.k8s.io", "v1", False, "StorageClass")
)


class ResourceMapper:
    """``{resource}`` of a metrics URL -> :class:`ResourceKind`; see the module docstring."""

    def __init__(self, kinds: tuple[ResourceKind, ...] | list[ResourceKind] = BUILTIN_KINDS):
        self._kinds: list[ResourceKind] = []
        self._by_name: dict[str, list[ResourceKind]] = {}
        for k in kinds:
            self.add(k)

    def add(self, kind: ResourceKind) -> None:
        """Know one more kind (later additions lose to earlier ones for a group-less name)."""
        if any(k.group == kind.group and k.plural == kind.plural for k in self._kinds):
            return
        self._kinds.append(kind)
        for name in {kind.plural, kind.singular}:
            self._by_name.setdefault(name, []).append(kind)

    def add_groups(self, groups) -> None:
        """The kinds of API groups this server serves (``extserver.api.APIGroup``)."""
        for g in groups:
            for res in getattr(g, "resources", {}).values():
                v = next((v for v in g.versions if v in res.versions), None)
                if v is not None:
                    self.add(ResourceKind(g.name, v, res.kind, res.plural, res.singular, res.namespaced))

    def lookup(self, gr: GroupResource) -> ResourceKind | None:
        """``ResourceFor``: the kind ``gr`` names, or None when no known kind matches."""
        for k in self._by_name.get(gr.resource.lower(), ()):
            if not gr.group or k.group == gr.group:
                return k
        return None

    def normalize(self, gr: GroupResource) -> GroupResource:
        """The canonical (plural, exact group) form; an unknown resource stays as given."""
        k = self.lookup(gr)
        return k.group_resource if k is not None else gr

    def reference_for(self, gr: GroupResource, namespace: str, name: str) -> ObjectReference:
        """``helpers.ReferenceFor``: the ``describedObject`` of one object. For a kind the
        mapper does not know, ``kind`` is the resource name (the best available guess)."""
        return self.references(gr)(namespace, name)

    def references(self, gr: GroupResource) -> Callable[[str, str], ObjectReference]:
        """:meth:`reference_for` of many objects of one resource (the kind is looked up once)."""
        k = self.lookup(gr)
        if k is None:
            kind, api_version, namespaced = gr.resource, gr.group, True
        else:
            kind, api_version, namespaced = k.kind, k.api_version, k.namespaced

        def ref(namespace: str, name: str) -> ObjectReference:
            return ObjectReference(kind, name, namespace if namespaced else "", api_version)
        return ref
