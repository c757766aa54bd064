"""A small user group loaded with ``--api-module tests.e2e.widgets``: the same public API a
user writes (see docs/writing-a-group.md). Widgets have a status subresource."""
from __future__ import annotations

from typing import Optional

from pydantic import Field

from extserver.api import APIGroup, KubeModel, KubeObject, Strategy, TableColumn, age_column, name_column
from extserver.machinery.errors import FieldError, invalid

group = APIGroup("demo.extserver.io", versions=["v1"])


class WidgetSpec(KubeModel):
    replicas: int = 1
    color: Optional[str] = None


class WidgetStatus(KubeModel):
    ready_replicas: Optional[int] = None
    phase: Optional[str] = None


class Widget(KubeObject):
    """A widget."""

    spec: WidgetSpec = Field(default_factory=WidgetSpec)
    status: WidgetStatus = Field(default_factory=WidgetStatus)


class WidgetStrategy(Strategy[Widget]):
    selectable_field_names = ("spec.color",)

    def validate(self, obj: Widget) -> list[FieldError]:
        if obj.spec.replicas < 0:
            return [invalid("spec.replicas", obj.spec.replicas, "must be greater than or equal to 0")]
        return []

    def validate_update(self, obj: Widget, old: Widget) -> list[FieldError]:
        return self.validate(obj)

    def validate_status_update(self, obj: Widget, old: Widget) -> list[FieldError]:
        r = obj.status.ready_replicas
        if r is not None and r < 0:
            return [invalid("status.readyReplicas", r, "must be greater than or equal to 0")]
        return []

    def warnings_on_create(self, obj: Widget) -> list[str]:
        return ["spec.color is not set"] if not obj.spec.color else []

    def selectable_fields(self, obj: Widget) -> dict[str, str]:
        return {"spec.color": obj.spec.color or ""}

    def table_columns(self) -> list[TableColumn]:
        return [name_column(),
                TableColumn("Replicas", lambda o: o.spec.replicas, type="integer"),
                TableColumn("Ready", lambda o: o.status.ready_replicas or 0, type="integer"),
                TableColumn("Color", lambda o: o.spec.color or "", priority=1),
                age_column()]


widgets = group.resource("widgets", hub=Widget, namespaced=True, strategy=WidgetStrategy(),
                         short_names=["wd"], status_subresource=True)
widgets.version("v1")
