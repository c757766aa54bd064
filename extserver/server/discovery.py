"""Discovery documents: ``/apis`` (APIGroupList), ``/apis/<g>`` (APIGroup),
``/apis/<g>/<v>`` (APIResourceList), and aggregated discovery (apidiscovery.k8s.io v2/v2beta1)."""
from __future__ import annotations

from ..api import APIGroup, ServedVersion


def group_doc(g: APIGroup) -> dict:
    versions = [{"groupVersion": f"{g.name}/{v}", "version": v} for v in g.served_versions()]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": g.name, "versions": versions,
            "preferredVersion": versions[0]}


def group_list_doc(groups: list[APIGroup]) -> dict:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [{k: v for k, v in group_doc(g).items() if k not in ("kind", "apiVersion")}
                       for g in groups]}


def _resource_entry(sv: ServedVersion) -> dict:
    e = {"name": sv.plural, "singularName": sv.singular, "namespaced": sv.namespaced, "kind": sv.kind,
         "verbs": sv.verbs}
    if sv.short_names:
        e["shortNames"] = sv.short_names
    if sv.categories:
        e["categories"] = sv.categories
    return e


def resource_list_doc(g: APIGroup, version: str) -> dict:
    resources = []
    for sv in g.served(version):
        resources.append(_resource_entry(sv))
        for sub in sv.subresources:
            resources.append({"name": f"{sv.plural}/{sub}", "singularName": "", "namespaced": sv.namespaced,
                              "kind": sv.kind, "verbs": ["get", "patch", "update"]})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{g.name}/{version}",
            "resources": resources}


def aggregated_doc(groups: list[APIGroup], api_version: str = "apidiscovery.k8s.io/v2") -> dict:
    items = []
    for g in groups:
        versions = []
        for v in g.served_versions():
            resources = []
            for sv in g.served(v):
                r = {"resource": sv.plural, "responseKind": {"group": g.name, "version": v, "kind": sv.kind},
                     "scope": "Namespaced" if sv.namespaced else "Cluster", "singularResource": sv.singular,
                     "verbs": sv.verbs}
                if sv.short_names:
                    r["shortNames"] = sv.short_names
                if sv.categories:
                    r["categories"] = sv.categories
                if sv.subresources:
                    r["subresources"] = [{"subresource": s, "responseKind": {"group": g.name, "version": v,
                                                                             "kind": sv.kind},
                                          "verbs": ["get", "patch", "update"]} for s in sv.subresources]
                resources.append(r)
            versions.append({"version": v, "resources": resources, "freshness": "Current"})
        items.append({"metadata": {"name": g.name, "creationTimestamp": None}, "versions": versions})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items}


def aggregated_from_api_resources(group: str, versions: list[tuple[str, list[dict]]]) -> dict:
    """The aggregated-discovery entry of a group known only by its ``APIResourceList``s (a
    dynamic group), converted as the kube-aggregator converts a legacy document
    (``endpoints.ConvertGroupVersionIntoToDiscovery``): ``a/b`` entries become subresource
    ``b`` of ``a``, and a parent that is not itself listed gets an empty ``responseKind``."""
    out = []
    for version, entries in versions:
        resources: list[dict] = []
        parents: dict[str, dict] = {}
        for e in entries:
            if "/" in e["name"]:
                continue
            r = {"resource": e["name"], "responseKind": {"group": e.get("group", ""),
                                                          "version": e.get("version", ""), "kind": e["kind"]},
                 "scope": "Namespaced" if e["namespaced"] else "Cluster",
                 "singularResource": e.get("singularName", ""), "verbs": e["verbs"]}
            resources.append(r)
            parents[e["name"]] = r
        for e in entries:
            parent, slash, sub = e["name"].partition("/")
            if not slash:
                continue
            p = parents.get(parent)
            if p is None:
                p = {"resource": parent, "responseKind": {"group": "", "version": "", "kind": ""},
                     "scope": "Namespaced" if e["namespaced"] else "Cluster", "singularResource": "", "verbs": None}
                resources.append(p)
                parents[parent] = p
            p.setdefault("subresources", []).append(
                {"subresource": sub, "responseKind": {"group": e.get("group", ""), "version": e.get("version", ""),
                                                      "kind": e["kind"]}, "verbs": e["verbs"]})
        out.append({"version": version, "resources": resources, "freshness": "Current"})
    return {"metadata": {"name": group, "creationTimestamp": None}, "versions": out}
