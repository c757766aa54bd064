"""``TypeMeta`` / ``ObjectMeta`` / ``KubeObject``: the pydantic base of every kind.

Field names are snake_case in Python and camelCase on the wire (``alias_generator``);
``None`` means "omitted" (Go's ``omitempty``) and is never serialized.
"""
from __future__ import annotations

import datetime as _dt
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class KubeModel(BaseModel):
    """Base for every model that goes on the wire: camelCase aliases, unknown fields ignored
    (the handlers detect them first, for ``fieldValidation``)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore",
                              validate_assignment=False)

    def to_wire(self) -> dict:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class OwnerReference(KubeModel):
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ManagedFieldsEntry(KubeModel):
    manager: str | None = None
    operation: str | None = None
    api_version: str | None = None
    time: str | None = None
    fields_type: str | None = None
    fields_v1: dict[str, Any] | None = Field(default=None, alias="fieldsV1")
    subresource: str | None = None


class ObjectMeta(KubeModel):
    """Standard object metadata (``io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta``)."""

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    self_link: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: int | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    owner_references: list[OwnerReference] | None = None
    finalizers: list[str] | None = None
    managed_fields: list[ManagedFieldsEntry] | None = None


class KubeObject(KubeModel):
    """Base of a kind: ``apiVersion``, ``kind``, ``metadata``. Subclasses add ``spec``,
    ``status`` or top-level fields."""

    api_version: str | None = None
    kind: str | None = None
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    #: set by the framework when the class is registered as a served version
    __gvk__: ClassVar[tuple[str, str, str] | None] = None


def now_rfc3339() -> str:
    """Seconds-precision UTC timestamp as Kubernetes writes ``metav1.Time``."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(s: str) -> _dt.datetime:
    return _dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
