"""The storage interface: a revisioned key-value store with etcd v3 semantics.

Every backend (embedded, etcd3, and the watch cache that wraps either) implements
:class:`Backend`. Objects are opaque ``bytes`` here; the registry encodes and decodes them.

Semantics (the same as etcd v3):

* One global, strictly increasing *revision* counts every successful write (create,
  update, delete) across all keys. ``resourceVersion`` is this revision.
* A :class:`KeyValue` carries ``create_revision`` (revision of the write that created the
  key) and ``mod_revision`` (revision of its last write).
* Writes are compare-and-swap: ``create`` only if the key is absent, ``update`` / ``delete``
  only if the key's current ``mod_revision`` equals the expected one.
* ``range`` reads a consistent snapshot at a revision (0 = the newest), ordered by key,
  with paging (``start_key`` inclusive, ``limit``); ``more`` tells whether keys remain.
* ``watch`` yields every change to keys under a prefix with revision > ``after_revision``
  in revision order, with no gaps or duplicates; if ``after_revision`` is older than the
  compacted revision it raises :class:`Compacted` (the API turns it into 410 Expired).
  A backend's watch may be a :class:`WatchFeed`: then its events can also be taken
  without awaiting, as they arrive (see there).
* ``compact(rev)`` forgets history older than ``rev``; later reads or watches at a
  revision < rev raise :class:`Compacted`.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Literal


@dataclass(slots=True, frozen=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(slots=True, frozen=True)
class Event:
    type: Literal["PUT", "DELETE"]
    key: str
    #: the new value (PUT) — for DELETE the value before the delete
    kv: KeyValue
    #: the value before this event (None for a create)
    prev_kv: KeyValue | None
    #: the revision of this event (== kv.mod_revision for PUT)
    revision: int

    @property
    def is_create(self) -> bool:
        return self.type == "PUT" and self.prev_kv is None


@dataclass(slots=True)
class RangeResult:
    kvs: list[KeyValue]
    #: the revision the snapshot was read at
    revision: int
    #: True when more keys exist after the last returned one (paging)
    more: bool
    #: number of keys remaining including the returned ones (may be an estimate, -1 if unknown)
    count: int = -1


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (None: no
    bound) — the end of a prefix range."""
    while prefix:
        c = ord(prefix[-1])
        if c < 0x10FFFF:
            return prefix[:-1] + chr(c + 1)
        prefix = prefix[:-1]
    return None


class StorageError(Exception):
    """Base class for storage errors."""


class KeyExists(StorageError):
    def __init__(self, key: str, current: KeyValue | None = None):
        super().__init__(f"key exists: {key}")
        self.key = key
        self.current = current


class KeyNotFound(StorageError):
    def __init__(self, key: str):
        super().__init__(f"key not found: {key}")
        self.key = key


class RevisionMismatch(StorageError):
    """The compare of a compare-and-swap failed. ``current`` is the key's current value
    (None if the key no longer exists)."""

    def __init__(self, key: str, expected: int, current: KeyValue | None):
        super().__init__(f"revision mismatch on {key}: expected {expected}, "
                         f"current {current.mod_revision if current else 'absent'}")
        self.key = key
        self.expected = expected
        self.current = current


class Compacted(StorageError):
    """The requested revision has been compacted away."""

    def __init__(self, requested: int, compacted: int):
        super().__init__(f"required revision {requested} has been compacted (compact revision {compacted})")
        self.requested = requested
        self.compacted = compacted


class FutureRevision(StorageError):
    """The requested revision is newer than the store's current revision."""

    def __init__(self, requested: int, current: int):
        super().__init__(f"required revision {requested} is a future revision (current {current})")
        self.requested = requested
        self.current = current


class Unavailable(StorageError):
    """The backend cannot be reached (etcd lost quorum, disk failed, ...)."""


class Backend(abc.ABC):
    """A revisioned key-value store. All methods are coroutines safe to call on the event loop
    (no blocking I/O on the calling thread)."""

    #: a short name for metrics and /readyz ("embedded", "etcd3", ...)
    name: str = "backend"

    async def start(self) -> None:  # pragma: no cover - default no-op
        """Open files / connections. Called once before use."""

    async def close(self) -> None:  # pragma: no cover - default no-op
        """Release resources. Active watches end (their iterators stop)."""

    @abc.abstractmethod
    async def get(self, key: str, revision: int = 0) -> tuple[KeyValue | None, int]:
        """The key's value at ``revision`` (0 = newest) and the revision read at."""

    @abc.abstractmethod
    async def range(self, prefix: str, *, start_key: str | None = None, limit: int = 0,
                    revision: int = 0) -> RangeResult:
        """Keys under ``prefix`` (>= ``start_key`` when given), ordered, at most ``limit``
        (0 = all), at ``revision`` (0 = newest). Raises Compacted / FutureRevision."""

    @abc.abstractmethod
    async def create(self, key: str, value: bytes) -> KeyValue:
        """Create ``key``; raises KeyExists if present. Returns the stored KeyValue."""

    @abc.abstractmethod
    async def update(self, key: str, value: bytes, expected_mod_revision: int) -> KeyValue:
        """Replace ``key`` if its mod_revision equals the expected one; raises
        RevisionMismatch (with the current value) or KeyNotFound."""

    @abc.abstractmethod
    async def delete(self, key: str, expected_mod_revision: int = 0) -> tuple[KeyValue, int]:
        """Delete ``key`` (when ``expected_mod_revision`` is non-zero, only if it matches).
        Returns (the value before the delete, the revision of the delete).
        Raises KeyNotFound / RevisionMismatch."""

    @abc.abstractmethod
    def watch(self, prefix: str, after_revision: int) -> AsyncIterator[list[Event]]:
        """Batches of events with revision > ``after_revision`` under ``prefix``, in order.
        Raises Compacted (on first iteration) if ``after_revision`` < the compacted revision.
        The iterator ends when the backend closes or the consumer stops iterating
        (``aclose()``)."""

    @abc.abstractmethod
    async def current_revision(self) -> int:
        """The newest revision."""

    @abc.abstractmethod
    async def compact(self, revision: int) -> None:
        """Forget history older than ``revision``."""

    async def compacted_revision(self) -> int:
        """The revision below which history is gone (0 if none)."""
        return 0

    async def healthy(self) -> tuple[bool, str]:
        """(ok, reason) for /readyz and /livez."""
        return True, ""


class WatcherTooSlow(StorageError):
    """A watcher fell too far behind the writers and was dropped so that it cannot hold
    back writes or memory. The consumer should watch again from the last revision it saw
    (and relist if that raises :class:`Compacted`)."""

    def __init__(self, pending: int, limit: int):
        super().__init__(f"watcher too slow: {pending} undelivered events exceed the limit of {limit}")
        self.pending = pending
        self.limit = limit


class WatchFeed(abc.ABC):
    """A watch whose events can be taken the moment the backend has them.

    Iterating it (``async for batch in feed``) is the ordinary :meth:`Backend.watch`
    contract. Besides, once :attr:`started` (the first batch was taken, or :meth:`wait`
    returned), a consumer may :meth:`listen`: the backend then calls the listener on the
    event loop, synchronously, each time events may be ready, and the listener takes them
    with :meth:`poll`. A thousand watchers of one resource are then served by one pass over
    the listeners instead of a thousand task wake-ups (the watch fan-out's cost in Python).
    A listener that does not poll (its client is not reading) leaves its events in the
    feed, where the slow-watcher rule (:mod:`.slowwatch`) finds them."""

    _listener: Callable[[], None] | None = None

    @property
    @abc.abstractmethod
    def started(self) -> bool:
        """True once the feed is registered with its backend (poll may return events)."""

    @abc.abstractmethod
    def poll(self) -> list[Event] | None:
        """The events ready now, without waiting: a batch, ``[]`` when there are none yet,
        None once the feed has ended. Raises what iterating would raise."""

    @abc.abstractmethod
    async def wait(self) -> None:
        """Until :meth:`poll` may return something other than ``[]``."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Stop watching."""

    def listen(self, listener: Callable[[], None] | None) -> None:
        """Call ``listener()`` whenever events may be ready (None: stop)."""
        self._listener = listener

    def _signal(self) -> None:
        """For the backend: events may be ready."""
        listener = self._listener
        if listener is not None:
            listener()

    def __aiter__(self) -> WatchFeed:
        return self

    async def __anext__(self) -> list[Event]:
        while True:
            batch = self.poll()
            if batch is None:
                raise StopAsyncIteration
            if batch:
                return batch
            await self.wait()


class MappedFeed(WatchFeed):
    """``inner``'s events, each passed through ``fn`` (a wrapper's transformation, as
    decryption), still a :class:`WatchFeed`."""

    def __init__(self, inner: WatchFeed, fn: Callable[[Event], Event]):
        self.inner = inner
        self.fn = fn

    @property
    def started(self) -> bool:
        return self.inner.started

    def poll(self) -> list[Event] | None:
        batch = self.inner.poll()
        return [self.fn(ev) for ev in batch] if batch else batch

    async def wait(self) -> None:
        await self.inner.wait()

    def listen(self, listener: Callable[[], None] | None) -> None:
        self.inner.listen(listener)

    async def aclose(self) -> None:
        await self.inner.aclose()


class DelegatingBackend(Backend):
    """A backend that wraps ``inner`` and forwards every call to it; wrappers (the watch
    cache, encryption, test spies) override only what they change. Backend-specific extras
    (``count``, ``prefix``, ...) are forwarded too."""

    def __init__(self, inner: Backend):
        self.inner = inner
        self.name = inner.name

    def __getattr__(self, attr: str) -> Any:
        if attr == "inner":  # not set yet: do not recurse
            raise AttributeError(attr)
        return getattr(self.inner, attr)

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def get(self, key: str, revision: int = 0) -> tuple[KeyValue | None, int]:
        return await self.inner.get(key, revision)

    async def range(self, prefix: str, *, start_key: str | None = None, limit: int = 0,
                    revision: int = 0) -> RangeResult:
        return await self.inner.range(prefix, start_key=start_key, limit=limit, revision=revision)

    async def create(self, key: str, value: bytes) -> KeyValue:
        return await self.inner.create(key, value)

    async def update(self, key: str, value: bytes, expected_mod_revision: int) -> KeyValue:
        return await self.inner.update(key, value, expected_mod_revision)

    async def delete(self, key: str, expected_mod_revision: int = 0) -> tuple[KeyValue, int]:
        return await self.inner.delete(key, expected_mod_revision)

    def watch(self, prefix: str, after_revision: int) -> AsyncIterator[list[Event]]:
        return self.inner.watch(prefix, after_revision)

    async def current_revision(self) -> int:
        return await self.inner.current_revision()

    async def compact(self, revision: int) -> None:
        await self.inner.compact(revision)

    async def compacted_revision(self) -> int:
        return await self.inner.compacted_revision()

    async def healthy(self) -> tuple[bool, str]:
        return await self.inner.healthy()
