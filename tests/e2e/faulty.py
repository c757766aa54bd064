"""A test-only group loaded with ``--api-module tests.e2e.faulty`` for the operations tests:
``gadgets`` whose strategy raises an unexpected ``RuntimeError`` when asked to validate an
object named ``explode`` (a handler bug: the server must answer 500 and keep serving), and
whose ``spec.data`` can carry large strings (to make long lists)."""
from __future__ import annotations

from typing import Optional

from pydantic import Field

from extserver.api import APIGroup, KubeModel, KubeObject, Strategy
from extserver.machinery.errors import FieldError

group = APIGroup("faulty.extserver.io", versions=["v1"])

#: the name whose validation raises
EXPLODE = "explode"


class GadgetSpec(KubeModel):
    data: Optional[str] = None


class Gadget(KubeObject):
    """A gadget."""

    spec: GadgetSpec = Field(default_factory=GadgetSpec)


class GadgetStrategy(Strategy[Gadget]):
    def validate(self, obj: Gadget) -> list[FieldError]:
        if obj.metadata.name == EXPLODE:
            raise RuntimeError("gadget strategy bug: cannot validate " + EXPLODE)
        return []


gadgets = group.resource("gadgets", hub=Gadget, namespaced=True, strategy=GadgetStrategy())
gadgets.version("v1", Gadget)
