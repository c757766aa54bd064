"""A group whose kind declares pydantic constraints (for the schema-validation tests)."""
from __future__ import annotations
from typing import Literal, Optional
from pydantic import Field
from extserver.api import APIGroup, KubeModel, KubeObject, Strategy

group = APIGroup("constraints.extserver.io", versions=["v1"])

class GadgetSpec(KubeModel):
    replicas: int = Field(1, ge=0, le=10, description="How many gadgets run.")
    name: Optional[str] = Field(None, min_length=2, max_length=5, pattern=r"^[a-z]+$")
    mode: Literal["a", "b"] = "a"
    tags: list[str] = Field(default_factory=list, max_length=2)
    ratio: Optional[float] = Field(None, gt=0)

class Gadget(KubeObject):
    """A gadget."""
    spec: GadgetSpec = Field(default_factory=GadgetSpec)

gadgets = group.resource("gadgets", hub=Gadget, namespaced=True, strategy=Strategy())
gadgets.version("v1")
