"""Provider storage: a read-only kind whose objects user code computes on request.

A :class:`Provider` answers ``get`` and ``list`` (and ``watch`` when it overrides it) with hub
objects; :class:`ProviderRegistry` takes the place of the registry Store for such a kind. It
adds what every computed API needs and a provider should not have to write:

* the selectors: the provider receives the label and field selectors (to narrow its work)
  and the registry applies them again to what comes back, so a provider may ignore them;
* a per-request deadline (``--provider-timeout``): past it the client gets 504 ``Timeout``
  at once, whatever the provider is doing (it is cancelled);
* failure isolation: :class:`SourceUnavailable` or any unexpected exception becomes 503
  ``ServiceUnavailable`` with ``Retry-After`` and one log line (no traceback to the client);
  a :class:`~extserver.machinery.errors.StatusError` (e.g. a ``NotFound``) passes through.

Writes are not routes of a provider kind: as in k8s.io/apiserver, where a REST storage that
does not implement ``rest.Creater`` (etc.) gets no route, they are answered 405 (see
:class:`~extserver.machinery.errors.MethodNotAllowed`). Example::

    class Clock(KubeObject):
        time: str = ""

    class Clocks(Provider[Clock]):
        async def list(self, namespace, label_selector, field_selector):
            return [Clock(metadata=ObjectMeta(name="utc"), time=now_rfc3339())]

    group.resource("clocks", hub=Clock, namespaced=False, provider=Clocks())
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, AsyncIterator, Generic, TypeVar

from ..machinery import errors as E
from ..machinery.meta import KubeObject
from ..machinery.selectors import FieldSelector, LabelSelector

if TYPE_CHECKING:
    from ..api import Resource

log = logging.getLogger("extserver.providers")

T = TypeVar("T", bound=KubeObject)

#: seconds a client is asked to wait after a 503 from a provider
RETRY_AFTER_SECONDS = 1


class SourceUnavailable(Exception):
    """Raised by a provider whose source (a metrics backend, a database ...) cannot answer now:
    the client gets 503 ``ServiceUnavailable`` with this message and ``Retry-After``."""

    def __init__(self, message: str, *, retry_after: int = RETRY_AFTER_SECONDS):
        super().__init__(message)
        self.retry_after = retry_after


class Provider(Generic[T]):
    """The objects of one computed kind. Override :meth:`list`; :meth:`get` defaults to listing
    and picking ``name``; override :meth:`watch` only when the source can stream changes (only
    then does discovery offer ``watch``).

    Objects are hub instances of the kind; ``metadata.name`` must be set (and
    ``metadata.namespace`` for a namespaced kind when listing all namespaces). ``namespace``
    is "" for a cluster-scoped kind and for a list across all namespaces."""

    async def get(self, namespace: str, name: str) -> T | None:
        """One object, or None (404 NotFound)."""
        for obj in await self.list(namespace, None, FieldSelector.parse(f"metadata.name={name}")):
            if obj.metadata.name == name:
                return obj
        return None

    async def list(self, namespace: str, label_selector: LabelSelector | None,
                   field_selector: FieldSelector | None) -> list[T]:
        raise NotImplementedError

    async def start(self, server) -> None:
        """Called once the server listens (a post-start hook: ``/readyz`` waits for it), e.g.
        to start informers; override when the provider needs it."""

    async def stop(self) -> None:
        """Called when the server stops."""

    def watch(self, namespace: str, label_selector: LabelSelector | None,
              field_selector: FieldSelector | None) -> AsyncIterator[tuple[str, T]]:
        """``(type, object)`` events, type ``ADDED``/``MODIFIED``/``DELETED``, until the client
        goes away (the iterator is then closed)."""
        raise NotImplementedError


def provider_verbs(provider: Provider) -> list[str]:
    """The verbs a provider offers: get and list, and watch when it overrides :meth:`Provider.watch`."""
    verbs = ["get", "list"]
    if type(provider).watch is not Provider.watch:
        verbs.append("watch")
    return sorted(verbs)


def provider_failed(what: str) -> E.ServiceUnavailable:
    """The 503 for a provider that failed in an unexpected way (no detail to the client)."""
    return E.ServiceUnavailable(f"the provider of {what} failed to answer", retry_after=RETRY_AFTER_SECONDS,
                                headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


async def guarded_call(what: str, verb: str, aw, timeout: float):
    """Await a provider's answer ``aw`` under the deadline ``timeout`` and map what it raises:
    a StatusError passes, :class:`SourceUnavailable` and any other exception are a 503 (one log
    line, no traceback to the client), the deadline is a 504. ``what`` names the API in
    messages ("pods.metrics.k8s.io")."""
    try:
        async with asyncio.timeout(timeout) as cm:
            return await aw
    except E.StatusError:
        raise
    except SourceUnavailable as e:
        log.warning("provider of %s: %s unavailable: %s", what, verb, e)
        raise E.ServiceUnavailable(str(e), retry_after=e.retry_after,
                                   headers={"Retry-After": str(e.retry_after)}) from None
    except TimeoutError:
        if cm.expired():
            log.warning("provider of %s: %s did not answer within %gs", what, verb, timeout)
            raise E.Timeout(f"Timeout: the provider of {what} did not answer within {timeout:g}s",
                            retry_after=1, headers={"Retry-After": "1"}) from None
        log.warning("provider of %s: %s failed: TimeoutError", what, verb)
        raise provider_failed(what) from None
    except Exception as e:  # a provider bug must not become a 500 with a traceback
        log.warning("provider of %s: %s failed: %s: %s", what, verb, type(e).__name__, e)
        raise provider_failed(what) from None


class ProviderRegistry:
    """The registry of a provider kind: the read half of :class:`~extserver.registry.store.Registry`
    on hub objects, with the deadline, the error mapping and the selectors."""

    def __init__(self, resource: "Resource", *, timeout: float = 10.0):
        self.resource = resource
        self.provider: Provider = resource.provider
        self.strategy = resource.strategy
        self.group = resource.group.name
        self.plural = resource.plural
        self.timeout = timeout
        names = ("metadata.name", "metadata.namespace", *self.strategy.selectable_field_names)
        self._supported_fields = set(names) if self.strategy.selectable_field_names else None

    def not_found(self, name: str) -> E.NotFound:
        return E.NotFound(self.group, self.plural, name)

    async def _call(self, verb: str, coro):
        return await guarded_call(self.resource.qualified, verb, coro, self.timeout)

    def _unavailable(self) -> E.ServiceUnavailable:
        return provider_failed(self.resource.qualified)

    # --- reads --------------------------------------------------------------------------
    async def get(self, namespace: str, name: str) -> KubeObject:
        obj = await self._call("get", self.provider.get(namespace, name))
        if obj is None:
            raise self.not_found(name)
        self._check(obj, namespace)
        return obj

    def check_field_selector(self, fs: FieldSelector | None) -> None:
        if fs is not None and not fs.empty:
            try:
                fs.check_supported(self._supported_fields)
            except ValueError as e:
                raise E.BadRequest(str(e)) from None

    async def list(self, namespace: str, label_selector: LabelSelector | None,
                   field_selector: FieldSelector | None) -> list[KubeObject]:
        """The provider's objects matching the selectors, ordered by namespace and name (the
        order a stored kind lists in)."""
        self.check_field_selector(field_selector)
        objs = await self._call("list", self.provider.list(namespace, label_selector, field_selector))
        out = []
        for obj in objs or ():
            self._check(obj, namespace)
            if self.matches(obj, label_selector, field_selector):
                out.append(obj)
        out.sort(key=lambda o: (o.metadata.namespace or "", o.metadata.name or ""))
        return out

    def watch(self, namespace: str, label_selector: LabelSelector | None,
              field_selector: FieldSelector | None) -> AsyncIterator[tuple[str, KubeObject]]:
        self.check_field_selector(field_selector)
        return self._watch(namespace, label_selector, field_selector)

    async def _watch(self, namespace: str, label_selector, field_selector) -> AsyncIterator[tuple[str, KubeObject]]:
        stream = self.provider.watch(namespace, label_selector, field_selector)
        try:
            async for typ, obj in stream:
                self._check(obj, namespace)
                if self.matches(obj, label_selector, field_selector):
                    yield typ, obj
        except (E.StatusError, asyncio.CancelledError):
            raise
        except SourceUnavailable as e:
            log.warning("provider of %s: watch ended: %s", self.resource.qualified, e)
        except Exception as e:
            log.warning("provider of %s: watch failed: %s: %s", self.resource.qualified, type(e).__name__, e)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

    # --- selection ----------------------------------------------------------------------
    def fields(self, obj: KubeObject) -> dict[str, str]:
        f = {"metadata.name": obj.metadata.name or ""}
        if self.resource.namespaced:
            f["metadata.namespace"] = obj.metadata.namespace or ""
        if self.strategy.selectable_field_names:
            f.update(self.strategy.selectable_fields(obj))
        return f

    def matches(self, obj: KubeObject, ls: LabelSelector | None, fs: FieldSelector | None) -> bool:
        if ls is not None and not ls.empty and not ls.matches(obj.metadata.labels or {}):
            return False
        if fs is not None and not fs.empty and not fs.matches(self.fields(obj)):
            return False
        return True

    def _check(self, obj: KubeObject, namespace: str) -> None:
        """Fill what the path implies; refuse objects a provider should not return."""
        if not isinstance(obj, KubeObject):
            log.warning("provider of %s returned a %s, not a %s", self.resource.qualified, type(obj).__name__,
                        self.resource.hub.__name__)
            raise self._unavailable()
        md = obj.metadata
        if not md.name:
            log.warning("provider of %s returned an object without metadata.name", self.resource.qualified)
            raise self._unavailable()
        if self.resource.namespaced:
            if not md.namespace:
                md.namespace = namespace or None
        else:
            md.namespace = None
