"""A collection watch as the API serves it: storage events turned into ADDED / MODIFIED /
DELETED (with label and field selector transitions, as kube's cacher), after the initial
events a list-then-watch asks for.

:class:`RegistryWatch` is taken two ways. :meth:`~RegistryWatch.next_batch` awaits the
next events (the initial ones, then the storage's). Once the initial events are out and
the storage watch is a :class:`~extserver.storage.interface.WatchFeed`, it is
:attr:`~RegistryWatch.pushable`: the serving layer may :meth:`~RegistryWatch.listen` and
:meth:`~RegistryWatch.poll` as events arrive, so that one write reaches a thousand watchers
in one pass (no task wake-up per watcher). Either way the storage's errors become the API's:
``Compacted`` is 410 "too old resource version"; ``WatcherTooSlow`` ends the stream (kube's
cacher closes a watcher that fell behind and clients watch again); ``Unavailable`` is 500."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, AsyncIterator, Callable

from ..machinery import errors as E
from ..storage.interface import Compacted, Event, KeyValue, Unavailable, WatcherTooSlow, WatchFeed
from .resource_version import parse_resource_version

if TYPE_CHECKING:
    from .store import ListOptions, Registry


@dataclass(slots=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    kv: KeyValue | None
    revision: int


def _storage_error(exc: Exception) -> E.StatusError | None:
    """The API's error for a storage error that ends a watch (None: end quietly)."""
    if isinstance(exc, Compacted):
        return E.too_old_resource_version(exc.requested, exc.compacted)
    if isinstance(exc, WatcherTooSlow):
        return None
    if isinstance(exc, Unavailable):
        return E.StatusError(f"storage is unavailable: {exc}", code=500, reason="InternalError")
    raise exc


class RegistryWatch:
    """One API watch of a collection (see the module docstring). Nothing happens until the
    first :meth:`next_batch`: the initial list, the resourceVersion checks and the storage
    watch start there, in the consumer's context."""

    def __init__(self, registry: Registry, namespace: str, opts: ListOptions, send_initial_events: bool | None):
        registry.check_field_selector(opts.field_selector)
        self._registry = registry
        self._namespace = namespace
        self._opts = opts
        self._send_initial = send_initial_events
        self._selecting = (opts.label_selector is not None and not opts.label_selector.empty) or \
                          (opts.field_selector is not None and not opts.field_selector.empty)
        self._stream: AsyncIterator[list[Event]] | None = None
        self._initial: list[WatchEvent] | None = None
        self._ended = False

    async def _start(self) -> None:
        reg, opts = self._registry, self._opts
        prefix = reg.prefix(self._namespace)
        rv = opts.resource_version
        initial: list[WatchEvent] = []
        if self._send_initial or rv in ("", "0"):
            if rv not in ("", "0") and self._send_initial:
                await reg._check_not_future(parse_resource_version(rv))
            r = await reg.backend.range(prefix)
            start = r.revision
            initial = [WatchEvent("ADDED", kv, kv.mod_revision) for kv in r.kvs if reg.matches(kv, opts)]
        else:
            start = parse_resource_version(rv)
            await reg._check_not_future(start)
        if self._send_initial:
            initial.append(WatchEvent("BOOKMARK", None, start))
        self._initial = initial
        self._stream = reg.backend.watch(prefix, start)

    @property
    def pushable(self) -> bool:
        """True when :meth:`poll` and :meth:`listen` may be used (see the module docstring)."""
        return (not self._initial and not self._ended and isinstance(self._stream, WatchFeed)
                and self._stream.started)

    def _end_with(self, exc: Exception) -> None:
        """The storage ended the watch: raise the API's error for it, or end quietly."""
        self._ended = True
        err = _storage_error(exc)
        if err is not None:
            raise err from None

    def _translate_batch(self, batch: list[Event]) -> list[WatchEvent]:
        reg, opts, selecting = self._registry, self._opts, self._selecting
        out = []
        for ev in batch:
            we = translate(reg, ev, opts, selecting)
            if we is not None:
                out.append(we)
        return out

    async def next_batch(self, until_pushable: bool = False) -> list[WatchEvent] | None:
        """The next events, or None at the end of the stream; with ``until_pushable``, ``[]``
        as soon as nothing is ready and the watch is :attr:`pushable` (the caller then
        listens instead of waiting here). Raises a StatusError for a watch the storage
        cannot serve."""
        if self._stream is None:
            await self._start()
        if self._initial:
            out, self._initial = self._initial[:1000], self._initial[1000:]
            return out
        stream = self._stream
        assert stream is not None
        while not self._ended:
            try:
                if isinstance(stream, WatchFeed):
                    batch = stream.poll()
                    if batch is None:
                        raise StopAsyncIteration
                    if not batch:
                        if until_pushable and stream.started:
                            return []
                        await stream.wait()
                        continue
                else:
                    batch = await anext(stream)
            except StopAsyncIteration:
                self._ended = True
                return None
            except (Compacted, WatcherTooSlow, Unavailable) as exc:
                self._end_with(exc)
                return None
            out = self._translate_batch(batch)
            if out:
                return out
        return None

    def poll(self) -> list[WatchEvent] | None:
        """Like :meth:`next_batch` without waiting: ``[]`` when nothing is ready yet. Only
        while :attr:`pushable`."""
        if self._ended:
            return None
        try:
            batch = self._stream.poll()  # type: ignore[union-attr] - a WatchFeed while pushable
        except (Compacted, WatcherTooSlow, Unavailable) as exc:
            self._end_with(exc)
            return None
        if batch is None:
            self._ended = True
            return None
        return self._translate_batch(batch) if batch else []

    def listen(self, listener: Callable[[], None] | None) -> None:
        """Have ``listener()`` called when events may be ready (None: stop). Only while
        :attr:`pushable`."""
        self._stream.listen(listener)  # type: ignore[union-attr] - a WatchFeed while pushable

    def __aiter__(self) -> AsyncIterator[WatchEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[WatchEvent]:
        while (batch := await self.next_batch()) is not None:
            for ev in batch:
                yield ev

    async def aclose(self) -> None:
        self._ended = True
        stream, self._stream = self._stream, None
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


def translate(reg: Registry, ev: Event, opts: ListOptions, selecting: bool) -> WatchEvent | None:
    """A storage event as the watcher sees it: selector transitions as in kube's cacher."""
    if ev.type == "DELETE":
        if selecting and not reg.matches(ev.kv, opts):
            return None
        return WatchEvent("DELETED", KeyValue(ev.kv.key, ev.kv.value, ev.kv.create_revision, ev.revision),
                          ev.revision)
    if not selecting:
        return WatchEvent("ADDED" if ev.prev_kv is None else "MODIFIED", ev.kv, ev.revision)
    cur = reg.matches(ev.kv, opts)
    prev = ev.prev_kv is not None and reg.matches(ev.prev_kv, opts)
    if cur and prev:
        return WatchEvent("MODIFIED", ev.kv, ev.revision)
    if cur:
        return WatchEvent("ADDED", ev.kv, ev.revision)
    if prev:
        # leaving the selection: a DELETED carrying the new state, as kube's cacher does
        return WatchEvent("DELETED", ev.kv, ev.revision)
    return None
