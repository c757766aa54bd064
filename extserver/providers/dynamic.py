"""API groups whose resources are not declared kinds but computed per request.

The custom and external metrics APIs are such groups: their "resources" are the metrics a
provider offers right now (discovery lists ``pods/requests_per_second``), their paths are
wildcards (``{resource}/{name}/{metric}``) and there is nothing to store. custom-metrics-
apiserver installs them beside the generic installer with their own routes and a dynamic
``APIResourceLister``; here a :class:`DynamicGroup` is an :class:`~extserver.api.APIGroup`
(so ``--api-module``, APIService registration and ``/apis`` treat it as any group) that
answers its own discovery and its resource requests. The server routes every resource
request of the group to :meth:`DynamicGroup.get` and encodes the document it returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ..api import APIGroup


@dataclass(slots=True)
class DynamicRequest:
    """What a dynamic group is asked: the parsed URL (as the request-info filter parsed it:
    ``parts`` are the segments after ``namespaces/<ns>``) and the query."""

    version: str
    verb: str  # get, list or watch
    namespace: str
    resource: str
    name: str
    subresource: str
    parts: list[str]
    query: Mapping[str, str] = field(default_factory=dict)


class DynamicGroup(APIGroup):
    """Subclasses implement :meth:`api_resources` and :meth:`get`; only GET is served."""

    def served_versions(self) -> list[str]:
        return list(self.versions)

    def api_resources(self, version: str) -> list[dict]:
        """The ``APIResource`` entries of ``/apis/<group>/<version>``, computed now (discovery
        is not cached: it follows the provider's metric list)."""
        raise NotImplementedError

    async def get(self, req: DynamicRequest) -> dict:
        """The response document for a GET (raise a ``StatusError`` for a 4xx)."""
        raise NotImplementedError

    def bind(self, server) -> None:
        """Called once by the server that serves the group (e.g. to learn its other groups).
        A provider with ``start(server)`` / ``stop()`` (e.g. one listing the cluster's pods) is
        started once the server listens (``/readyz`` waits for it) and stopped with it."""
        provider = getattr(self, "provider", None)
        start, stop = getattr(provider, "start", None), getattr(provider, "stop", None)
        if start is not None:
            server.add_post_start_hook(f"provider-{self.name}", start)
        if stop is not None:
            server.shutdown_hooks.append(stop)
