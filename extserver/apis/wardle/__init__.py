"""``wardle.example.com``: wire-compatible with Go's ``k8s.io/sample-apiserver``.

Written with the framework's public API only (see ``docs/writing-a-group.md``).

* ``Flunder`` (namespaced) in ``v1alpha1`` (``spec.reference`` + ``spec.referenceType``,
  defaulted to ``Flunder`` when a reference is set) and ``v1beta1``
  (``spec.flunderReference`` / ``spec.fischerReference`` / ``spec.referenceType``),
  stored as ``v1alpha1`` like the Go server, converted through the internal form.
* ``Fischer`` (cluster-scoped, ``disallowedFlunders``) in ``v1alpha1``.
* ``BanFlunder`` admission: a Flunder whose name a Fischer disallows cannot be created.
"""
from __future__ import annotations

from typing import Optional

from pydantic import Field

from extserver.api import (APIGroup, AdmissionAttributes, AdmissionPlugin, KubeModel, KubeObject,
                           Strategy, TableColumn, age_column, name_column)
from extserver.machinery.errors import FieldError, Forbidden, invalid

GROUP = "wardle.example.com"
# the scheme as the sample's decoding errors name it (after the file and line creating it)
group = APIGroup(GROUP, versions=["v1beta1", "v1alpha1"],
                 scheme_name="k8s.io/sample-apiserver/pkg/apiserver/apiserver.go:36")

FLUNDER, FISCHER = "Flunder", "Fischer"


# --- internal (hub) types --------------------------------------------------------------
class FlunderSpec(KubeModel):
    flunder_reference: Optional[str] = None
    fischer_reference: Optional[str] = None
    reference_type: Optional[str] = None


class FlunderStatus(KubeModel):
    pass


class Flunder(KubeObject):
    spec: FlunderSpec = Field(default_factory=FlunderSpec)
    status: FlunderStatus = Field(default_factory=FlunderStatus)


class Fischer(KubeObject):
    disallowed_flunders: Optional[list[str]] = None


# --- v1alpha1 --------------------------------------------------------------------------
class FlunderSpecV1alpha1(KubeModel):
    reference: Optional[str] = Field(default=None, description="A name of another flunder or fischer, depending on the reference type.")
    reference_type: Optional[str] = Field(
        default=None, description="The type of the reference: Flunder or Fischer. Defaults to Flunder when a reference is set.")


class FlunderV1alpha1(KubeObject):
    """A Flunder (v1alpha1)."""

    spec: FlunderSpecV1alpha1 = Field(default_factory=FlunderSpecV1alpha1)
    status: FlunderStatus = Field(default_factory=FlunderStatus)

    def set_defaults(self) -> None:
        if not self.spec.reference_type and self.spec.reference:
            self.spec.reference_type = FLUNDER

    def to_hub(self) -> Flunder:
        spec = FlunderSpec()
        if self.spec.reference_type == FLUNDER:
            spec.reference_type, spec.flunder_reference = FLUNDER, self.spec.reference
        elif self.spec.reference_type == FISCHER:
            spec.reference_type, spec.fischer_reference = FISCHER, self.spec.reference
        return Flunder(spec=spec, status=self.status)

    @classmethod
    def from_hub(cls, hub: Flunder) -> "FlunderV1alpha1":
        spec = FlunderSpecV1alpha1()
        if hub.spec.reference_type == FLUNDER:
            spec.reference_type, spec.reference = FLUNDER, hub.spec.flunder_reference
        elif hub.spec.reference_type == FISCHER:
            spec.reference_type, spec.reference = FISCHER, hub.spec.fischer_reference
        return cls(spec=spec, status=hub.status)


# --- v1beta1 ---------------------------------------------------------------------------
class FlunderSpecV1beta1(KubeModel):
    flunder_reference: Optional[str] = Field(default=None, description="A name of another flunder, mutually exclusive to the FischerReference.")
    fischer_reference: Optional[str] = Field(default=None, description="A name of a fischer, mutually exclusive to the FlunderReference.")
    reference_type: Optional[str] = Field(default=None, description="The reference type: Flunder or Fischer.")


class FlunderV1beta1(KubeObject):
    """A Flunder (v1beta1)."""

    spec: FlunderSpecV1beta1 = Field(default_factory=FlunderSpecV1beta1)
    status: FlunderStatus = Field(default_factory=FlunderStatus)

    def to_hub(self) -> Flunder:
        return Flunder(spec=FlunderSpec(**self.spec.model_dump()), status=self.status)

    @classmethod
    def from_hub(cls, hub: Flunder) -> "FlunderV1beta1":
        return cls(spec=FlunderSpecV1beta1(**hub.spec.model_dump()), status=hub.status)


class FischerV1alpha1(Fischer):
    """A Fischer (v1alpha1): a cluster-scoped list of flunder names that may not be created."""

    disallowed_flunders: Optional[list[str]] = Field(default=None, description="Names of flunders that may not be created.")


# --- strategies ------------------------------------------------------------------------
def validate_flunder_spec(s: FlunderSpec, path: str = "spec") -> list[FieldError]:
    """The sample's ``ValidateFlunderSpec``, rule for rule."""
    errs: list[FieldError] = []
    flunder_ref, fischer_ref, ref_type = s.flunder_reference or "", s.fischer_reference or "", s.reference_type or ""
    if flunder_ref and fischer_ref:
        errs.append(invalid(f"{path}.fischerReference", fischer_ref, "cannot be set with flunderReference at the same time"))
    elif flunder_ref and ref_type != FLUNDER:
        errs.append(invalid(f"{path}.flunderReference", flunder_ref, "cannot be set if referenceType is not Flunder"))
    elif fischer_ref and ref_type != FISCHER:
        errs.append(invalid(f"{path}.fischerReference", fischer_ref, "cannot be set if referenceType is not Fischer"))
    elif not fischer_ref and ref_type == FISCHER:
        errs.append(invalid(f"{path}.fischerReference", fischer_ref, "cannot be empty if referenceType is Fischer"))
    elif not flunder_ref and ref_type == FLUNDER:
        errs.append(invalid(f"{path}.flunderReference", flunder_ref, "cannot be empty if referenceType is Flunder"))
    if ref_type and ref_type not in (FISCHER, FLUNDER):
        errs.append(invalid(f"{path}.referenceType", ref_type, "must be Flunder or Fischer"))
    return errs


def _reference(o: Flunder) -> str:
    return o.spec.flunder_reference or o.spec.fischer_reference or ""


class FlunderStrategy(Strategy[Flunder]):
    # no selectable fields beyond metadata: sample-apiserver registers no field-label
    # conversion, so any other field selector is kube's default "not a known field selector"

    def validate(self, obj: Flunder) -> list[FieldError]:
        return validate_flunder_spec(obj.spec)

    def validate_update(self, obj: Flunder, old: Flunder) -> list[FieldError]:
        return validate_flunder_spec(obj.spec)

    def table_columns(self) -> list[TableColumn]:
        return [
            name_column(),
            TableColumn("Reference Type", lambda o: o.spec.reference_type or "", description="The reference type."),
            TableColumn("Reference", _reference, description="The referenced object.", priority=1),
            age_column(),
        ]


class FischerStrategy(Strategy[Fischer]):
    def table_columns(self) -> list[TableColumn]:
        return [
            name_column(),
            TableColumn("Disallowed Flunders", lambda o: ",".join(o.disallowed_flunders or []),
                        description="Flunder names that may not be created."),
            age_column(),
        ]


flunders = group.resource("flunders", hub=Flunder, namespaced=True, strategy=FlunderStrategy(),
                          storage_version="v1alpha1", short_names=["fl"], categories=["wardle"],
                          status_subresource=True, schema_validation=False)  # typed Go structs, as the sample
flunders.version("v1alpha1", FlunderV1alpha1)
flunders.version("v1beta1", FlunderV1beta1)

fischers = group.resource("fischers", hub=Fischer, namespaced=False, strategy=FischerStrategy(),
                          categories=["wardle"], schema_validation=False)
fischers.version("v1alpha1", FischerV1alpha1)


# --- admission -------------------------------------------------------------------------
class BanFlunder(AdmissionPlugin):
    """Refuses to create a Flunder whose name is in any Fischer's ``disallowedFlunders``."""

    name = "BanFlunder"
    operations = frozenset({"CREATE"})

    def __init__(self) -> None:
        self._fischers = None

    async def start(self, server) -> None:
        self._fischers = server.registry(GROUP, "fischers")

    def handles(self, attrs: AdmissionAttributes) -> bool:
        return attrs.operation == "CREATE" and attrs.group == GROUP and attrs.kind == FLUNDER

    async def admit(self, attrs: AdmissionAttributes) -> None:
        if self._fischers is None:
            raise Forbidden(attrs.group, attrs.resource, attrs.name, "not yet ready to handle request")
        for fischer in await self._fischers.list_hub():
            if attrs.name in (fischer.disallowed_flunders or []):
                raise Forbidden(attrs.group, attrs.resource, attrs.name,
                                "this name may not be used, please change the resource name")


group.admission(BanFlunder())
