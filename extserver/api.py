"""The framework's public API: declare an API group, its resources, their versions,
strategies and admission plugins — no code generation.

Example::

    wardle = APIGroup("wardle.example.com", versions=["v1beta1", "v1alpha1"])

    class Flunder(KubeObject):          # the internal (hub) form
        spec: FlunderSpec = FlunderSpec()

    flunders = wardle.resource("flunders", hub=Flunder, namespaced=True,
                               strategy=FlunderStrategy(), storage_version="v1alpha1",
                               short_names=["fl"])

    @flunders.version("v1alpha1")
    class FlunderV1alpha1(KubeObject):
        spec: FlunderSpecV1alpha1 = ...
        def set_defaults(self) -> None: ...
        def to_hub(self) -> Flunder: ...
        @classmethod
        def from_hub(cls, hub: Flunder) -> "FlunderV1alpha1": ...
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterable, TypeVar

from .machinery.errors import FieldError
from .machinery.meta import KubeModel, KubeObject, ObjectMeta

__all__ = [
    "APIGroup", "Resource", "ServedVersion", "Strategy", "TableColumn", "AdmissionPlugin",
    "AdmissionAttributes", "KubeObject", "KubeModel", "ObjectMeta", "FieldError",
]

T = TypeVar("T", bound=KubeObject)

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(slots=True)
class TableColumn:
    """A column of ``kubectl get`` output (``meta.k8s.io/v1`` ``TableColumnDefinition``).

    ``value`` computes the cell from the internal (hub) object. ``priority`` > 0 columns are
    shown only with ``-o wide``."""

    name: str
    value: Callable[[Any], Any]
    type: str = "string"
    format: str = ""
    description: str = ""
    priority: int = 0


def name_column() -> TableColumn:
    return TableColumn("Name", lambda o: o.metadata.name, format="name",
                       description="Name must be unique within a namespace.")


def age_column() -> TableColumn:
    # the cell is the creation timestamp; the table encoder renders it as a human duration
    return TableColumn("Age", lambda o: o.metadata.creation_timestamp, type="string", format="age",
                       description="CreationTimestamp is a timestamp representing the server time "
                                   "when this object was created.")


class Strategy(Generic[T]):
    """Per-kind behaviour, as ``rest.RESTCreateStrategy`` / ``RESTUpdateStrategy`` in Go.

    Every hook receives the internal (hub) object. Override what the kind needs."""

    #: PUT without ``metadata.resourceVersion`` allowed (last write wins)
    allow_unconditional_update: bool = False
    #: PUT of a missing object creates it
    allow_create_on_update: bool = False

    def prepare_for_create(self, obj: T) -> None:
        """Clear or set fields before validation on create (e.g. reset status)."""

    def prepare_for_update(self, obj: T, old: T) -> None:
        """Adjust ``obj`` from ``old`` on update (the framework already keeps status
        from ``old`` for kinds with a status subresource)."""

    def validate(self, obj: T) -> list[FieldError]:
        return []

    def validate_update(self, obj: T, old: T) -> list[FieldError]:
        return []

    def canonicalize(self, obj: T) -> None:
        """Normalise ``obj`` after validation, before storage."""

    def warnings_on_create(self, obj: T) -> list[str]:
        return []

    def warnings_on_update(self, obj: T, old: T) -> list[str]:
        return []

    # --- status subresource -------------------------------------------------------------
    def prepare_for_status_update(self, obj: T, old: T) -> None:
        """Adjust a status update (the framework already keeps everything but status)."""

    def validate_status_update(self, obj: T, old: T) -> list[FieldError]:
        return []

    # --- reading ------------------------------------------------------------------------
    def table_columns(self) -> list[TableColumn]:
        """Columns for ``kubectl get``. Default: kube's ``Name`` and ``Created At``."""
        return [name_column(),
                TableColumn("Created At", lambda o: o.metadata.creation_timestamp, type="date",
                            description="CreationTimestamp is a timestamp representing the server "
                                        "time when this object was created.")]

    def selectable_fields(self, obj: T) -> dict[str, str]:
        """Fields usable in ``fieldSelector`` besides ``metadata.name`` and
        ``metadata.namespace``. Return every declared field (empty string when unset)."""
        return {}

    #: names of the extra selectable fields (for error messages and OpenAPI)
    selectable_field_names: tuple[str, ...] = ()


@dataclass(slots=True)
class AdmissionAttributes:
    """What an admission plugin sees (``admission.Attributes``)."""

    operation: str  # CREATE, UPDATE, DELETE
    group: str
    version: str
    resource: str
    subresource: str
    kind: str
    namespace: str
    name: str
    object: Any  # hub object (None for DELETE)
    old_object: Any
    user: Any
    dry_run: bool
    server: Any = None  # the running server (registries), for plugins that read other kinds


class AdmissionPlugin:
    """An in-process admission plugin: ``admit`` (mutating) runs before ``validate``.

    Raise a :class:`~extserver.machinery.errors.StatusError` (usually ``Forbidden``) to refuse."""

    name: str = "plugin"
    #: operations this plugin handles
    operations: frozenset[str] = frozenset({"CREATE", "UPDATE", "DELETE"})

    def handles(self, attrs: AdmissionAttributes) -> bool:
        return attrs.operation in self.operations

    async def start(self, server: Any) -> None:
        """Called once when the server starts (e.g. to look up registries)."""

    def ready(self) -> bool:
        return True

    async def admit(self, attrs: AdmissionAttributes) -> None:
        """Mutating phase: may change ``attrs.object``."""

    async def validate(self, attrs: AdmissionAttributes) -> None:
        """Validating phase: may only refuse."""


@dataclass(slots=True)
class ServedVersion:
    """One resource served at one version: the shape OpenAPI and discovery consume."""

    resource: "Resource"
    version: str
    model: type[KubeObject]

    @property
    def group(self) -> str:
        return self.resource.group.name

    @property
    def kind(self) -> str:
        return self.resource.kind

    @property
    def list_kind(self) -> str:
        return self.resource.kind + "List"

    @property
    def plural(self) -> str:
        return self.resource.plural

    @property
    def singular(self) -> str:
        return self.resource.singular

    @property
    def namespaced(self) -> bool:
        return self.resource.namespaced

    @property
    def verbs(self) -> list[str]:
        return self.resource.verbs

    @property
    def subresources(self) -> list[str]:
        return self.resource.subresources

    @property
    def short_names(self) -> list[str]:
        return self.resource.short_names

    @property
    def categories(self) -> list[str]:
        return self.resource.categories

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    # conversion ------------------------------------------------------------------------
    def to_hub(self, obj: KubeObject) -> KubeObject:
        fn = getattr(obj, "to_hub", None)
        if self.model is self.resource.hub:
            return obj
        if fn is not None:
            hub = fn()
            hub.metadata = obj.metadata
            return hub
        return self.resource.hub.model_validate(obj.model_dump(by_alias=True, exclude_none=True))

    def from_hub(self, hub: KubeObject) -> KubeObject:
        if self.model is self.resource.hub:
            out = hub.model_copy()
        else:
            fn = getattr(self.model, "from_hub", None)
            if fn is not None:
                out = fn(hub)
                out.metadata = hub.metadata
            else:
                out = self.model.model_validate(hub.model_dump(by_alias=True, exclude_none=True))
        out.api_version = self.api_version
        out.kind = self.kind
        return out

    def set_defaults(self, obj: KubeObject) -> None:
        fn = getattr(obj, "set_defaults", None)
        if fn is not None:
            fn()


class Resource:
    """A kind of a group: its plural resource name, internal (hub) model, strategy and the
    versions it is served at."""

    def __init__(self, group: "APIGroup", plural: str, *, hub: type[KubeObject], kind: str | None,
                 singular: str | None, namespaced: bool, strategy: Strategy | None,
                 storage_version: str | None, short_names: Iterable[str], categories: Iterable[str],
                 status_subresource: bool, verbs: Iterable[str] | None, provider: Any = None,
                 schema_validation: bool = True):
        self.group = group
        self.plural = plural
        self.hub = hub
        self.kind = kind or hub.__name__
        self.singular = singular or self.kind.lower()
        self.namespaced = namespaced
        self.strategy: Strategy = strategy or Strategy()
        self._storage_version = storage_version
        self.short_names = list(short_names)
        self.categories = list(categories)
        self.has_status = status_subresource
        #: a :class:`~extserver.providers.provider.Provider`: objects computed on request, read-only
        self.provider = provider
        if provider is not None:
            from .providers.provider import provider_verbs
            if verbs is not None or status_subresource:
                raise ValueError(f"resource {plural}: a provider kind's verbs are the provider's (get, list, watch)")
            verbs = provider_verbs(provider)
        self.verbs = sorted(verbs) if verbs is not None else list(ALL_VERBS)
        #: bodies are validated against the served OpenAPI schema, as a CRD's are (422 with a
        #: field error per constraint or wrong JSON type); False: decoded as Go decodes typed
        #: structs (k8s.io/sample-apiserver: a wrong JSON type is a 400 decoding error, the
        #: model's constraints are left to the strategy)
        self.schema_validation = schema_validation
        self.versions: dict[str, ServedVersion] = {}

    @property
    def subresources(self) -> list[str]:
        return ["status"] if self.has_status else []

    @property
    def storage_version(self) -> str:
        if self._storage_version:
            return self._storage_version
        # default: the group's most preferred version this resource is served at
        for v in self.group.versions:
            if v in self.versions:
                return v
        raise ValueError(f"resource {self.plural} has no served version")

    @property
    def storage(self) -> ServedVersion:
        return self.versions[self.storage_version]

    def version(self, version: str, model: type[KubeObject] | None = None) -> Callable:
        """Serve this resource at ``version`` with ``model`` (default: the hub model).

        Usable as a decorator on the versioned model class, or called directly."""
        if version not in self.group.versions:
            raise ValueError(f"version {version!r} is not declared on group {self.group.name!r}")

        def register(cls: type[KubeObject]) -> type[KubeObject]:
            if not (isinstance(cls, type) and issubclass(cls, KubeObject)):
                raise TypeError(f"{cls!r} must be a KubeObject subclass")
            self.versions[version] = ServedVersion(self, version, cls)
            return cls

        # called plainly, the hub model is served; as a decorator, the decorated model replaces it
        register(model if model is not None else self.hub)
        return register if model is None else (lambda cls: cls)

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group.name}" if self.group.name else self.plural

    def __repr__(self) -> str:
        return f"Resource({self.qualified})"


class APIGroup:
    """An API group: versions in priority order (the first is preferred), resources,
    admission plugins."""

    def __init__(self, name: str, *, versions: list[str], scheme_name: str = ""):
        if not versions:
            raise ValueError("an API group needs at least one version")
        self.name = name
        self.versions = list(versions)
        #: what decoding errors call the scheme (Go names it after the file and line that
        #: created it, e.g. ``k8s.io/sample-apiserver/pkg/apiserver/apiserver.go:36``)
        self.scheme_name = scheme_name or f"extserver/{name}"
        self.resources: dict[str, Resource] = {}
        self.admission_plugins: list[AdmissionPlugin] = []

    @property
    def preferred_version(self) -> str:
        return self.versions[0]

    def resource(self, plural: str, *, hub: type[KubeObject], kind: str | None = None,
                 singular: str | None = None, namespaced: bool = True, strategy: Strategy | None = None,
                 storage_version: str | None = None, short_names: Iterable[str] = (),
                 categories: Iterable[str] = (), status_subresource: bool = False,
                 verbs: Iterable[str] | None = None, provider: Any = None,
                 schema_validation: bool = True) -> Resource:
        """Declare a resource; with ``provider`` (a :class:`~extserver.providers.provider.Provider`)
        its objects are computed on request instead of stored. ``schema_validation`` (default
        True): request bodies are checked against the kind's OpenAPI schema with kube's CRD
        field errors (see :class:`Resource`)."""
        if plural in self.resources:
            raise ValueError(f"resource {plural} already declared in {self.name}")
        res = Resource(self, plural, hub=hub, kind=kind, singular=singular, namespaced=namespaced,
                       strategy=strategy, storage_version=storage_version, short_names=short_names,
                       categories=categories, status_subresource=status_subresource, verbs=verbs,
                       provider=provider, schema_validation=schema_validation)
        self.resources[plural] = res
        return res

    def admission(self, plugin: AdmissionPlugin) -> AdmissionPlugin:
        self.admission_plugins.append(plugin)
        return plugin

    def served(self, version: str) -> list[ServedVersion]:
        return [r.versions[version] for r in self.resources.values() if version in r.versions]

    def served_versions(self) -> list[str]:
        """Versions (priority order) at which at least one resource is served."""
        return [v for v in self.versions if self.served(v)]

    def validate(self) -> None:
        """Check the declaration is complete (called when the server loads the group)."""
        for res in self.resources.values():
            if not res.versions:
                raise ValueError(f"resource {res.qualified} is not served at any version")
            if res.storage_version not in res.versions:
                raise ValueError(f"resource {res.qualified}: storage version {res.storage_version} "
                                 f"is not a served version")
