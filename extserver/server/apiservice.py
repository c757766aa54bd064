"""Self-registration of the server's APIServices (``--register-apiservice``).

At start-up the server creates, or updates, one ``apiregistration.k8s.io/v1`` APIService
per served group-version, pointing the kube-aggregator at its Service and carrying its own
CA as ``caBundle``. For users who deploy without Helm; the chart's ``apiService.selfRegister``
uses it too, with the chart owning the objects (so uninstalling removes them).

The body builder and the merge rule are pure functions; :func:`register_apiservices` is the
only part that talks to the cluster, with the official ``kubernetes`` client run in a thread.
"""
from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from kubernetes.client import ApiClient, ApiregistrationV1Api, V1APIService
from kubernetes.client.exceptions import ApiException

__all__ = [
    "DEFAULT_GROUP_PRIORITY_MINIMUM",
    "DEFAULT_VERSION_PRIORITY",
    "APIServiceRegistrationError",
    "RegistrationResult",
    "apiservice_name",
    "build_apiservice_body",
    "default_version_priorities",
    "merge_apiservice",
    "register_apiservices",
]

log = logging.getLogger(__name__)

APISERVICE_API_VERSION = "apiregistration.k8s.io/v1"
DEFAULT_GROUP_PRIORITY_MINIMUM = 1000
DEFAULT_VERSION_PRIORITY = 15
_VERSION_PRIORITY_STEP = 5
_PEM_CERT_MARKER = b"-----BEGIN CERTIFICATE-----"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "extserver"


class APIServiceRegistrationError(RuntimeError):
    """An APIService could not be created or updated."""


@dataclass(frozen=True, slots=True)
class RegistrationResult:
    """What registration did to one APIService."""

    name: str
    action: Literal["created", "updated", "unchanged"]


def apiservice_name(group: str, version: str) -> str:
    """The APIService name the aggregator expects: ``<version>.<group>``."""
    return f"{version}.{group}"


def default_version_priorities(group_versions: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Version priorities in preference order: within a group the first version listed
    (the preferred one) gets the highest priority, each next one 5 less, the last 15."""
    by_group: dict[str, list[str]] = {}
    for group, version in group_versions:
        by_group.setdefault(group, []).append(version)
    priorities: dict[tuple[str, str], int] = {}
    for group, versions in by_group.items():
        for index, version in enumerate(versions):
            remaining = len(versions) - 1 - index
            priorities[(group, version)] = DEFAULT_VERSION_PRIORITY + _VERSION_PRIORITY_STEP * remaining
    return priorities


def build_apiservice_body(
    group: str,
    version: str,
    *,
    service_name: str,
    service_namespace: str,
    ca_bundle_pem: bytes,
    service_port: int = 443,
    group_priority_minimum: int = DEFAULT_GROUP_PRIORITY_MINIMUM,
    version_priority: int = DEFAULT_VERSION_PRIORITY,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The APIService object (as JSON-ready dict) for one served group-version.

    Raises ValueError for values the kube-apiserver would reject (so a bad flag fails at
    start-up with a clear message instead of a 422 from the cluster).
    """
    if not group or not version:
        raise ValueError("group and version must not be empty")
    if not service_name or not service_namespace:
        raise ValueError("service name and namespace must not be empty")
    if _PEM_CERT_MARKER not in ca_bundle_pem:
        raise ValueError("ca_bundle_pem must hold at least one PEM certificate")
    if not 1 <= group_priority_minimum <= 20000:
        raise ValueError(f"groupPriorityMinimum must be in 1..20000, got {group_priority_minimum}")
    if not 1 <= version_priority <= 1000:
        raise ValueError(f"versionPriority must be in 1..1000, got {version_priority}")
    if not 1 <= service_port <= 65535:
        raise ValueError(f"service port must be in 1..65535, got {service_port}")
    return {
        "apiVersion": APISERVICE_API_VERSION,
        "kind": "APIService",
        "metadata": {
            "name": apiservice_name(group, version),
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, **(labels or {})},
        },
        "spec": {
            "group": group,
            "version": version,
            "groupPriorityMinimum": group_priority_minimum,
            "versionPriority": version_priority,
            "service": {"name": service_name, "namespace": service_namespace, "port": service_port},
            "caBundle": base64.b64encode(ca_bundle_pem).decode("ascii"),
        },
    }


def merge_apiservice(
    existing: Mapping[str, Any],
    desired: Mapping[str, Any],
    *,
    overwrite_priorities: bool = False,
) -> dict[str, Any] | None:
    """The body that updates ``existing`` to serve ``desired``, or None when it already does.

    The service reference, group, version and caBundle are taken from ``desired`` and
    ``insecureSkipTLSVerify`` is dropped (it may not be set with a caBundle). Priorities are
    kept from ``existing`` (someone, e.g. a Helm chart, chose them) unless
    ``overwrite_priorities`` or ``existing`` lacks them. Metadata (resourceVersion, labels,
    annotations, ...) is kept, with desired labels added; status is not sent.
    """
    old_spec: Mapping[str, Any] = existing.get("spec") or {}
    new_spec = dict(old_spec)
    new_spec.pop("insecureSkipTLSVerify", None)
    for key in ("group", "version", "service", "caBundle"):
        new_spec[key] = desired["spec"][key]
    for key in ("groupPriorityMinimum", "versionPriority"):
        if overwrite_priorities or not old_spec.get(key):
            new_spec[key] = desired["spec"][key]

    old_meta: Mapping[str, Any] = existing.get("metadata") or {}
    new_meta = dict(old_meta)
    new_meta["labels"] = {**(old_meta.get("labels") or {}), **(desired["metadata"].get("labels") or {})}

    if new_spec == dict(old_spec) and new_meta["labels"] == (old_meta.get("labels") or {}):
        return None
    return {
        "apiVersion": APISERVICE_API_VERSION,
        "kind": "APIService",
        "metadata": new_meta,
        "spec": new_spec,
    }


async def register_apiservices(
    api_client: ApiClient,
    group_versions: Sequence[tuple[str, str]],
    *,
    service_name: str,
    service_namespace: str,
    ca_bundle_pem: bytes,
    service_port: int = 443,
    group_priority_minimum: int = DEFAULT_GROUP_PRIORITY_MINIMUM,
    version_priorities: Mapping[tuple[str, str], int] | None = None,
    overwrite_priorities: bool = False,
    max_attempts: int = 5,
    retry_delay: float = 0.2,
) -> list[RegistrationResult]:
    """Create or update the APIService of every ``(group, version)``.

    ``group_versions`` lists, per group, the preferred version first (it gets the highest
    default versionPriority). A write that loses a race (409 Conflict / AlreadyExists) is
    retried from a fresh read, at most ``max_attempts`` times per APIService. Any other API
    error (403 without the RBAC for it, 422, ...) raises APIServiceRegistrationError.
    Blocking client calls run in a worker thread.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    priorities = dict(default_version_priorities(group_versions))
    priorities.update(version_priorities or {})
    api = ApiregistrationV1Api(api_client)
    results = []
    for group, version in group_versions:
        desired = build_apiservice_body(
            group,
            version,
            service_name=service_name,
            service_namespace=service_namespace,
            ca_bundle_pem=ca_bundle_pem,
            service_port=service_port,
            group_priority_minimum=group_priority_minimum,
            version_priority=priorities[(group, version)],
        )
        result = await _register_one(
            api, api_client, desired,
            overwrite_priorities=overwrite_priorities,
            max_attempts=max_attempts,
            retry_delay=retry_delay,
        )
        log.info("APIService %s %s", result.name, result.action)
        results.append(result)
    return results


async def _register_one(
    api: ApiregistrationV1Api,
    api_client: ApiClient,
    desired: dict[str, Any],
    *,
    overwrite_priorities: bool,
    max_attempts: int,
    retry_delay: float,
) -> RegistrationResult:
    name = desired["metadata"]["name"]
    for attempt in range(max_attempts):
        if attempt:
            await asyncio.sleep(retry_delay * attempt)
        try:
            current = await asyncio.to_thread(api.read_api_service, name)
        except ApiException as exc:
            if exc.status != 404:
                raise _registration_error(name, "read", exc) from exc
            current = None

        if current is None:
            try:
                await asyncio.to_thread(api.create_api_service, V1APIService.from_dict(desired))
            except ApiException as exc:
                if exc.status == 409:  # created meanwhile: update it on the next attempt
                    continue
                raise _registration_error(name, "create", exc) from exc
            return RegistrationResult(name, "created")

        existing = api_client.sanitize_for_serialization(current)
        body = merge_apiservice(existing, desired, overwrite_priorities=overwrite_priorities)
        if body is None:
            return RegistrationResult(name, "unchanged")
        try:
            await asyncio.to_thread(api.replace_api_service, name, V1APIService.from_dict(body))
        except ApiException as exc:
            if exc.status == 409:  # stale resourceVersion: re-read and retry
                continue
            raise _registration_error(name, "update", exc) from exc
        return RegistrationResult(name, "updated")
    raise APIServiceRegistrationError(
        f"APIService {name}: still conflicting after {max_attempts} attempts")


def _registration_error(name: str, verb: str, exc: ApiException) -> APIServiceRegistrationError:
    hint = ""
    if exc.status == 403:
        hint = (" (the service account needs get/update on apiservices.apiregistration.k8s.io"
                f"{' and create' if verb == 'create' else ''})")
    return APIServiceRegistrationError(
        f"APIService {name}: {verb} failed: {exc.status} {exc.reason}{hint}")
