"""The embedded durable backend: the default storage for a single replica.

Layout
    ``<data_dir>/store.db`` is an SQLite database in WAL mode holding a kine-style log,
    one row per revision ``(rev, key, value, create_rev, prev_rev, deleted)``, and a
    ``meta`` table with the compacted revision. ``<data_dir>/LOCK`` is held (``flock``)
    while the store is open so two processes can never share a data directory.

Memory
    The current state and all retained MVCC history live in memory (:class:`_Index`):
    a sorted list of live keys, a sorted list of every key with retained versions, the
    versions of each key, and the event log of the retained revisions. Reads and watches
    never touch the disk and never wait for writes. Memory use is the live data plus the
    retained history, which compaction bounds.

Writes (group commit)
    A write is compare-and-swapped on the event loop against the committed state plus
    the writes still queued, gets the next revision and is queued for the writer thread.
    The writer drains the queue, appends every queued row in ONE transaction (one fsync
    per batch) and hands the batch back to the loop, which applies it to memory in
    revision order, wakes the writers and feeds the watchers. A write's coroutine returns
    only after its row is committed, so an acknowledged write survives ``kill -9``
    (``sync="normal"``) or a power loss (``sync="full"``). Readers only ever see
    committed writes; a CAS that fails against a still-queued write waits for that write
    to commit before reporting the (then committed) current value. A cancelled caller
    does not cancel its write once queued (as with etcd).

Failures
    A failed commit (disk full, I/O error) stops the store (fail-stop, as etcd does): the
    batch and everything queued behind it fail with :class:`Unavailable`, later writes
    too, :meth:`EmbeddedBackend.healthy` reports the reason, reads keep serving the last
    committed state, and a restart recovers from what is on disk.

Revisions
    As in etcd, an empty store is at revision 1 and the first write gets revision 2.
    Every create, update and delete takes exactly one revision.

Compaction
    ``compact(rev)`` keeps, for every key, the newest version at or below ``rev`` (dropped
    too if it is a delete) and everything newer; reads at revisions >= ``rev`` still work,
    watches must start after a revision >= ``rev``. Automatic compaction (policy): every
    ``compaction_interval`` seconds the store compacts to the revision that was current one
    interval earlier, so watchers can always resume within at least one interval; and
    whenever more than ``history_limit_events`` (+10%) events are retained it compacts down
    to the newest ``history_limit_events`` events, which bounds memory and disk.
"""
from __future__ import annotations

import asyncio
import bisect
import collections
import fcntl
import logging
import os
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

from .interface import (
    prefix_end,
    Backend,
    Compacted,
    Event,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    KeyValue,
    RangeResult,
    RevisionMismatch,
    StorageError,
    Unavailable,
    WatchFeed,
    WatcherTooSlow,
)
from .dispatch import Dispatcher
from .slowwatch import MIN_BUFFER, Stall

log = logging.getLogger(__name__)

SyncMode = Literal["full", "normal"]

#: largest batch of events handed to a watcher while it replays history
_REPLAY_BATCH = 1000
#: most revisions compacted in one step (bounds the time spent on the event loop per step)
_COMPACT_STEP = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    rev        INTEGER PRIMARY KEY,
    key        TEXT    NOT NULL,
    value      BLOB,
    create_rev INTEGER NOT NULL,
    prev_rev   INTEGER NOT NULL,
    deleted    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

_Row = tuple[int, str, bytes | None, int, int, int]


def _make_private(db: Path) -> None:
    """The store's directory 0700, its files 0600 (kube: etcd's data directory is 0700).
    Looser modes of an existing store are tightened; the database file is created 0600
    before SQLite opens it, and SQLite gives its -wal and -shm files the database's mode."""
    os.close(os.open(db, os.O_RDWR | os.O_CREAT, 0o600))
    for p, mode in ((db.parent, 0o700), (db, 0o600), (db.with_name(db.name + "-wal"), 0o600),
                    (db.with_name(db.name + "-shm"), 0o600), (db.with_name("LOCK"), 0o600)):
        try:
            m = p.stat().st_mode & 0o777
            if m & ~mode:
                os.chmod(p, m & mode)
        except FileNotFoundError:
            pass


class SqliteLog:
    """The on-disk log. The only code touching the database; used by one thread at a time
    (the loader thread during :meth:`open`, then the writer thread)."""

    def __init__(self, path: Path, sync: SyncMode):
        self.path = path
        self.sync = sync
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None

    def open(self) -> tuple[int, list[_Row]]:
        """Lock the directory, open (or create) the database and return
        (compacted revision, every row in revision order)."""
        directory = self.path.parent
        if not directory.is_dir():
            directory.mkdir(mode=0o700, parents=True)
            _fsync_dir(directory.parent)
        _make_private(self.path)
        fd = os.open(directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Unavailable(f"storage directory {directory} is in use by another process") from None
        self._lock_fd = fd
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._conn = conn
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                log.warning("%s: the file system does not support WAL; journal mode is %s", self.path, mode)
            conn.execute(f"PRAGMA synchronous={self.sync.upper()}")
            conn.execute("PRAGMA journal_size_limit=67108864")
            conn.executescript(_SCHEMA)
            _fsync_dir(directory)  # make the database file's directory entry durable
            row = conn.execute("SELECT value FROM meta WHERE name = 'compact_revision'").fetchone()
            rows = conn.execute(
                "SELECT rev, key, value, create_rev, prev_rev, deleted FROM log ORDER BY rev").fetchall()
        except (sqlite3.Error, OSError) as exc:
            self.close()
            raise Unavailable(f"cannot open {self.path}: {exc}") from exc
        return (row[0] if row else 0), rows

    def append(self, rows: list[_Row]) -> None:
        """Append rows in one transaction; returns once committed (durably, per ``sync``)."""
        self._transaction(lambda c: c.executemany("INSERT INTO log VALUES (?, ?, ?, ?, ?, ?)", rows))

    def compact(self, revision: int, drop: list[int]) -> None:
        """Delete the rows of the dropped revisions and record the compacted revision."""
        def run(c: sqlite3.Connection) -> None:
            c.executemany("DELETE FROM log WHERE rev = ?", ((r,) for r in drop))
            c.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('compact_revision', ?)", (revision,))
        self._transaction(run)

    def _transaction(self, body: Callable[[sqlite3.Connection], Any]) -> None:
        conn = self._conn
        if conn is None:
            raise sqlite3.ProgrammingError("the store is closed")
        conn.execute("BEGIN IMMEDIATE")
        try:
            body(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    log.exception("rollback failed")
            raise

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(slots=True)
class _KeyHistory:
    """The retained versions of one key, oldest first; ``None`` marks a delete."""
    revs: list[int] = field(default_factory=list)
    kvs: list[KeyValue | None] = field(default_factory=list)


class _Index:
    """The in-memory MVCC state. Only touched on the event loop once the store is open.

    Invariant: ``events`` holds exactly the events of revisions
    ``(revision - len(events), revision]`` and those are all revisions > ``compacted``
    (revision 1, the empty store, has no event)."""

    def __init__(self) -> None:
        self.revision = 1
        self.compacted = 0
        self.current: dict[str, KeyValue] = {}
        self.live_keys: list[str] = []
        self.history: dict[str, _KeyHistory] = {}
        self.history_keys: list[str] = []
        self.events: list[Event] = []

    @classmethod
    def restore(cls, compacted: int, rows: Iterable[_Row]) -> _Index:
        """Rebuild the state from the database rows (in revision order)."""
        idx = cls()
        for rev, key, value, create_rev, prev_rev, deleted in rows:
            prev = idx.current.get(key)
            if deleted:
                # a delete always follows a retained version; the stub only guards odd files
                idx.apply(rev, key, None, prev or KeyValue(key, b"", create_rev, prev_rev))
            else:
                idx.apply(rev, key, KeyValue(key, bytes(value or b""), create_rev, rev), prev)
        idx.compacted = compacted
        idx.revision = max(idx.revision, compacted)
        idx.events = [e for e in idx.events if e.revision > compacted]
        if idx.events and idx.events[0].revision != idx.revision - len(idx.events) + 1:
            raise Unavailable("the store is corrupt: revisions are missing from the log")
        return idx

    # -- writes -------------------------------------------------------------------------
    def apply(self, revision: int, key: str, kv: KeyValue | None, prev: KeyValue | None) -> Event:
        """Record a committed write (``kv`` None = delete) and return its event."""
        hist = self.history.get(key)
        if hist is None:
            hist = self.history[key] = _KeyHistory()
            bisect.insort(self.history_keys, key)
        hist.revs.append(revision)
        hist.kvs.append(kv)
        if kv is None:
            if self.current.pop(key, None) is not None:
                del self.live_keys[bisect.bisect_left(self.live_keys, key)]
            assert prev is not None
            event = Event("DELETE", key, prev, prev, revision)
        else:
            if key not in self.current:
                bisect.insort(self.live_keys, key)
            self.current[key] = kv
            event = Event("PUT", key, kv, prev, revision)
        self.events.append(event)
        self.revision = revision
        return event

    # -- reads --------------------------------------------------------------------------
    def value_at(self, key: str, revision: int) -> KeyValue | None:
        hist = self.history.get(key)
        if hist is None:
            return None
        i = bisect.bisect_right(hist.revs, revision) - 1
        return hist.kvs[i] if i >= 0 else None

    def events_after(self, revision: int) -> list[Event]:
        start = len(self.events) - (self.revision - revision)
        return self.events[max(start, 0):] if start < len(self.events) else []

    def range_current(self, lo: str, hi: str | None, limit: int) -> tuple[list[KeyValue], bool, int]:
        keys = self.live_keys
        i = bisect.bisect_left(keys, lo)
        j = bisect.bisect_left(keys, hi) if hi is not None else len(keys)
        end = j if limit <= 0 else min(j, i + limit)
        current = self.current
        return [current[k] for k in keys[i:end]], end < j, max(j - i, 0)

    def range_at(self, lo: str, hi: str | None, limit: int, revision: int) -> tuple[list[KeyValue], bool, int]:
        keys = self.history_keys
        i = bisect.bisect_left(keys, lo)
        j = bisect.bisect_left(keys, hi) if hi is not None else len(keys)
        kvs: list[KeyValue] = []
        while i < j and (limit <= 0 or len(kvs) < limit):
            kv = self.value_at(keys[i], revision)
            i += 1
            if kv is not None:
                kvs.append(kv)
        if i >= j:
            return kvs, False, len(kvs)
        rest = self._count_at(i, j, hi, revision)
        return kvs, rest > 0, len(kvs) + rest

    def _count_at(self, i: int, j: int, hi: str | None, revision: int) -> int:
        """Keys of ``history_keys[i:j]`` live at ``revision``: by scanning them or (usually
        cheaper: an event costs far less to visit than a key to look up) from today's count
        corrected by the keys written since."""
        keys = self.history_keys
        since = self.revision - revision
        if since >= 8 * (j - i):
            return sum(1 for k in keys[i:j] if self.value_at(k, revision) is not None)
        lo = keys[i]
        live = self.live_keys
        count = (bisect.bisect_left(live, hi) if hi is not None else len(live)) - bisect.bisect_left(live, lo)
        for k in {e.key for e in self.events[len(self.events) - since:]}:
            if lo <= k and (hi is None or k < hi):
                count += (self.value_at(k, revision) is not None) - (k in self.current)
        return count

    # -- compaction ---------------------------------------------------------------------
    def compaction_plan(self, revision: int) -> tuple[set[str], list[int]]:
        """The keys to trim and the revisions (rows) that compacting to ``revision`` drops."""
        n = len(self.events) - (self.revision - revision)
        keys = {e.key for e in self.events[:max(n, 0)]}
        drop: list[int] = []
        for key in keys:
            hist = self.history.get(key)
            if hist is not None:
                drop.extend(hist.revs[:self._droppable(hist, revision)])
        return keys, drop

    def compact(self, revision: int, keys: Iterable[str]) -> None:
        """Apply a compaction whose plan was computed by :meth:`compaction_plan`. Keys
        outside ``keys`` have nothing to drop: their newest version at or below
        ``revision`` is older than the previous compaction, which already trimmed them."""
        if revision <= self.compacted:
            return
        emptied = False
        for key in keys:
            hist = self.history.get(key)
            if hist is None:
                continue
            n = self._droppable(hist, revision)
            if n:
                del hist.revs[:n]
                del hist.kvs[:n]
                if not hist.revs:
                    del self.history[key]
                    emptied = True
        if emptied:
            self.history_keys = [k for k in self.history_keys if k in self.history]
        n = len(self.events) - (self.revision - revision)
        if n > 0:
            del self.events[:n]
        self.compacted = revision

    @staticmethod
    def _droppable(hist: _KeyHistory, revision: int) -> int:
        """How many leading versions compaction to ``revision`` drops: all before the newest
        one at or below ``revision``, and that one too when it is a delete."""
        i = bisect.bisect_right(hist.revs, revision) - 1
        if i < 0:
            return 0
        return i + 1 if hist.kvs[i] is None else i


@dataclass(slots=True, eq=False)
class _Write:
    revision: int
    key: str
    kv: KeyValue | None  # None for a delete
    prev: KeyValue | None
    future: asyncio.Future[None]

    def row(self) -> _Row:
        if self.kv is None:
            assert self.prev is not None
            return (self.revision, self.key, None, self.prev.create_revision, self.prev.mod_revision, 1)
        return (self.revision, self.key, self.kv.value, self.kv.create_revision,
                self.prev.mod_revision if self.prev else 0, 0)


@dataclass(slots=True, eq=False)
class _Compaction:
    revision: int
    keys: set[str]
    drop: list[int]
    future: asyncio.Future[None]


class _Watcher(WatchFeed):
    """One watch of the embedded store: the retained events it replays, then the batches
    :meth:`EmbeddedBackend._notify` queues for it (``pending`` live events in all)."""

    def __init__(self, backend: EmbeddedBackend, prefix: str, after: int):
        self.backend = backend
        self.prefix = prefix
        self.after = after
        self.replay: collections.deque[list[Event]] = collections.deque()
        self.batches: collections.deque[list[Event]] = collections.deque()
        self.pending = 0
        self.error: StorageError | None = None
        self.closed = False
        self.registered = False
        self.wakeup = asyncio.Event()
        #: kube's slow-watcher rule (a buffer of kube's smallest watch channel)
        self.stall = Stall(MIN_BUFFER)

    @property
    def started(self) -> bool:
        return self.registered

    def _register(self) -> None:
        backend = self.backend
        idx = backend._index
        self.registered = True
        if self.after < idx.compacted:
            self.closed = True
            raise Compacted(self.after, idx.compacted)
        replay = [e for e in idx.events_after(self.after) if e.key.startswith(self.prefix)]
        self.replay.extend(replay[i:i + _REPLAY_BATCH] for i in range(0, len(replay), _REPLAY_BATCH))
        self.after = max(self.after, idx.revision)
        if backend._state == "open" and not self.closed:
            backend._watchers.add(self)
        else:
            self.closed = True

    def poll(self) -> list[Event] | None:
        if not self.registered:
            self._register()
        if self.replay:
            return self.replay.popleft()
        if self.error is not None:
            raise self.error
        batches = self.batches
        if batches:  # every batch queued since the last poll, up to the replay batch size
            batch = batches.popleft()
            while batches and len(batch) + len(batches[0]) <= _REPLAY_BATCH:
                batch = batch + batches.popleft()
            self.pending -= len(batch)
            return batch
        return None if self.closed else []

    async def wait(self) -> None:
        await self.wakeup.wait()
        self.wakeup.clear()

    async def aclose(self) -> None:
        self.closed = True
        self._listener = None
        self.backend._watchers.discard(self)


class EmbeddedBackend(Backend):
    """Durable single-replica storage: SQLite WAL log on disk, MVCC state in memory.

    ``sync``: ``"full"`` fsyncs every commit (survives power loss), ``"normal"`` does not
    (survives a crash or ``kill -9`` of the process). ``history_limit_events`` and
    ``compaction_interval`` (seconds; 0 disables the timer) drive automatic compaction as
    described in the module docstring. A watcher with more than ``watch_queue_limit``
    undelivered events is dropped with :class:`WatcherTooSlow`.
    """

    name = "embedded"

    def __init__(self, data_dir: str | Path, *, sync: SyncMode = "full",
                 history_limit_events: int = 100_000, compaction_interval: float = 300.0,
                 watch_queue_limit: int = 10_000):
        if sync not in ("full", "normal"):
            raise ValueError(f"sync must be 'full' or 'normal', not {sync!r}")
        if history_limit_events < 1:
            raise ValueError("history_limit_events must be positive")
        self.data_dir = Path(data_dir)
        self._disk = SqliteLog(self.data_dir / "store.db", sync)
        self._history_limit = history_limit_events
        self._compaction_interval = compaction_interval
        self._watch_queue_limit = watch_queue_limit
        self._index = _Index()
        self._next_revision = 2
        #: the newest queued (not yet committed) write of each key
        self._pending: dict[str, _Write] = {}
        self._queue: queue.SimpleQueue[_Write | _Compaction | None] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: threading.Thread | None = None
        self._state: Literal["new", "starting", "open", "closing", "closed"] = "new"
        self._closed = asyncio.Event()
        self._failure: str | None = None
        #: set (and replaced) whenever a batch is applied or the store fails
        self._applied = asyncio.Event()
        self._watchers: set[_Watcher] = set()
        self._dispatcher = Dispatcher()
        self._compact_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._size_compaction: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        if self._state != "new":
            return
        self._state = "starting"
        self._loop = asyncio.get_running_loop()
        try:
            self._index = await asyncio.to_thread(self._load)
        except BaseException:
            self._state = "new"
            raise
        self._next_revision = self._index.revision + 1
        self._writer = threading.Thread(target=self._writer_main, name="extserver-storage-writer", daemon=True)
        self._writer.start()
        self._state = "open"
        if self._compaction_interval and self._compaction_interval > 0:
            self._spawn(self._compact_periodically())

    def _load(self) -> _Index:
        compacted, rows = self._disk.open()
        try:
            return _Index.restore(compacted, rows)
        except BaseException:
            self._disk.close()
            raise

    async def close(self) -> None:
        if self._state == "new":
            self._state = "closed"
            self._closed.set()
        if self._state != "open":
            if self._state == "closing":
                await self._closed.wait()
            return
        self._state = "closing"
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._queue.put(None)
        assert self._writer is not None
        # the writer's last callbacks were scheduled before it exited, so they run first
        await asyncio.to_thread(self._writer.join)
        watchers = list(self._watchers)
        self._watchers.clear()
        for watcher in watchers:
            watcher.closed = True
        self._wake_watchers(watchers)
        self._state = "closed"
        self._closed.set()

    async def healthy(self) -> tuple[bool, str]:
        if self._failure is not None:
            return False, self._failure
        if self._state != "open":
            return False, f"storage is {self._state}"
        if self._writer is None or not self._writer.is_alive():
            return False, "storage writer thread stopped"
        return True, ""

    # -- reads --------------------------------------------------------------------------
    def _read_revision(self, revision: int) -> int:
        idx = self._index
        if revision <= 0:
            return idx.revision
        if revision < idx.compacted:
            raise Compacted(revision, idx.compacted)
        if revision > idx.revision:
            raise FutureRevision(revision, idx.revision)
        return revision

    async def get(self, key: str, revision: int = 0) -> tuple[KeyValue | None, int]:
        rev = self._read_revision(revision)
        if rev == self._index.revision:
            return self._index.current.get(key), rev
        return self._index.value_at(key, rev), rev

    async def range(self, prefix: str, *, start_key: str | None = None, limit: int = 0,
                    revision: int = 0) -> RangeResult:
        rev = self._read_revision(revision)
        lo = prefix if start_key is None or start_key < prefix else start_key
        hi = prefix_end(prefix)
        if hi is not None and lo >= hi:
            return RangeResult([], rev, False, 0)
        if rev == self._index.revision:
            kvs, more, count = self._index.range_current(lo, hi, limit)
        else:
            kvs, more, count = self._index.range_at(lo, hi, limit, rev)
        return RangeResult(kvs, rev, more, count)

    async def current_revision(self) -> int:
        return self._index.revision

    async def compacted_revision(self) -> int:
        return self._index.compacted

    # -- writes -------------------------------------------------------------------------
    def _check_writable(self) -> None:
        if self._failure is not None:
            raise Unavailable(self._failure)
        if self._state != "open":
            raise Unavailable(f"storage is {self._state}")

    def _effective(self, key: str) -> tuple[KeyValue | None, bool]:
        """The key's value after every queued write, and whether that value is uncommitted."""
        self._check_writable()
        write = self._pending.get(key)
        if write is not None:
            return write.kv, True
        return self._index.current.get(key), False

    def _enqueue(self, key: str, kv: KeyValue | None, prev: KeyValue | None) -> asyncio.Future[None]:
        assert self._loop is not None
        write = _Write(self._next_revision, key, kv, prev, self._loop.create_future())
        self._next_revision += 1
        self._pending[key] = write
        self._queue.put(write)
        return write.future

    async def create(self, key: str, value: bytes) -> KeyValue:
        if not key:
            raise ValueError("empty key")
        try:
            key.encode()
        except UnicodeEncodeError as exc:
            raise ValueError(f"key is not valid UTF-8: {key!r}") from exc
        value = bytes(value)
        while True:
            current, uncommitted = self._effective(key)
            if current is None:
                break
            if not uncommitted:
                raise KeyExists(key, current)
            await self._applied.wait()  # a queued write decides; wait for it to commit
        rev = self._next_revision
        kv = KeyValue(key, value, rev, rev)
        await self._enqueue(key, kv, None)
        return kv

    async def update(self, key: str, value: bytes, expected_mod_revision: int) -> KeyValue:
        value = bytes(value)
        while True:
            current, uncommitted = self._effective(key)
            if current is not None and current.mod_revision == expected_mod_revision:
                break
            if not uncommitted:
                if current is None:
                    raise KeyNotFound(key)
                raise RevisionMismatch(key, expected_mod_revision, current)
            await self._applied.wait()  # a queued write decides; wait for it to commit
        assert current is not None
        kv = KeyValue(key, value, current.create_revision, self._next_revision)
        await self._enqueue(key, kv, current)
        return kv

    async def delete(self, key: str, expected_mod_revision: int = 0) -> tuple[KeyValue, int]:
        while True:
            current, uncommitted = self._effective(key)
            if current is not None and expected_mod_revision in (0, current.mod_revision):
                break
            if not uncommitted:
                if current is None:
                    raise KeyNotFound(key)
                raise RevisionMismatch(key, expected_mod_revision, current)
            await self._applied.wait()  # a queued write decides; wait for it to commit
        assert current is not None
        rev = self._next_revision
        await self._enqueue(key, None, current)
        return current, rev

    # -- the writer thread and its callbacks on the loop --------------------------------
    def _writer_main(self) -> None:
        failed = False
        while True:
            items = [self._queue.get()]
            try:
                while True:
                    items.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            writes: list[_Write] = []
            for item in items:
                if isinstance(item, _Write):
                    writes.append(item)
                    continue
                failed = self._commit(writes, failed)
                writes = []
                if item is None:
                    self._disk.close()
                    return
                failed = self._commit_compaction(item, failed)
            failed = self._commit(writes, failed)

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is gone; nobody is waiting any more
            pass

    def _commit(self, writes: list[_Write], failed: bool) -> bool:
        if not writes:
            return failed
        if failed:
            self._call(self._fail, writes, None)
            return True
        try:
            self._disk.append([w.row() for w in writes])
        except Exception as exc:  # noqa: BLE001 - any error makes the store fail-stop
            log.exception("storage commit failed")
            self._call(self._fail, writes, exc)
            return True
        self._call(self._apply_batch, writes)
        return False

    def _commit_compaction(self, op: _Compaction, failed: bool) -> bool:
        if failed:
            self._call(self._fail, [op], None)
            return True
        try:
            self._disk.compact(op.revision, op.drop)
        except Exception as exc:  # noqa: BLE001 - any error makes the store fail-stop
            log.exception("storage compaction failed")
            self._call(self._fail, [op], exc)
            return True
        self._call(self._apply_compaction, op)
        return False

    def _apply_batch(self, writes: list[_Write]) -> None:
        idx = self._index
        events = [idx.apply(w.revision, w.key, w.kv, w.prev) for w in writes]
        for w in writes:
            if self._pending.get(w.key) is w:
                del self._pending[w.key]
        woken = self._notify(events)
        for w in writes:
            if not w.future.done():
                w.future.set_result(None)
        self._wake_writers()
        if woken:  # after the writers' tasks, which answer first: the fan-out runs in slices after them
            self._wake_watchers(woken)
        if (len(idx.events) > self._history_limit + max(1, self._history_limit // 10)
                and self._state == "open" and self._failure is None
                and (self._size_compaction is None or self._size_compaction.done())):
            self._size_compaction = self._spawn(self._compact_quietly(idx.revision - self._history_limit))

    def _apply_compaction(self, op: _Compaction) -> None:
        self._index.compact(op.revision, op.keys)
        if not op.future.done():
            op.future.set_result(None)

    def _fail(self, ops: list[_Write] | list[_Compaction], exc: BaseException | None) -> None:
        if self._failure is None:
            self._failure = f"storage write failed: {exc}"
            self._pending.clear()
        for op in ops:
            if not op.future.done():
                op.future.set_exception(Unavailable(self._failure))
        self._wake_writers()

    def _wake_writers(self) -> None:
        applied, self._applied = self._applied, asyncio.Event()
        applied.set()

    # -- watch --------------------------------------------------------------------------
    def watch(self, prefix: str, after_revision: int) -> _Watcher:
        """See :meth:`Backend.watch` (a :class:`WatchFeed`). Replays the retained events
        after ``after_revision`` (in batches of at most 1000), then each committed batch as
        it is applied; ``after_revision`` beyond the current revision waits for that
        revision. Registers on the first iteration (or poll)."""
        return _Watcher(self, prefix, after_revision)

    def _notify(self, events: list[Event]) -> list[_Watcher]:
        """Queue ``events`` for the watchers they concern; return those to wake."""
        first, last = events[0].revision, events[-1].revision
        now = time.monotonic()
        woken = []
        for w in list(self._watchers):
            if last <= w.after:
                continue
            batch = [e for e in events if e.key.startswith(w.prefix) and e.revision > w.after] \
                if w.prefix or first <= w.after else list(events)
            if not batch:
                continue
            if w.pending + len(batch) > self._watch_queue_limit:
                w.error = WatcherTooSlow(w.pending + len(batch), self._watch_queue_limit)
                w.batches.clear()
                w.pending = 0
                self._watchers.discard(w)
            else:
                w.batches.append(batch)
                w.pending += len(batch)
                if w.stall.over_budget(w.pending, now):
                    log.warning("Forcing %s watcher close due to unresponsiveness: %d undelivered events, "
                                "buffer %d", w.prefix, w.pending, w.stall.buffer)
                    w.error = WatcherTooSlow(w.pending, w.stall.buffer)
                    w.batches.clear()
                    w.pending = 0
                    self._watchers.discard(w)
                    w.stall.close()
            woken.append(w)
        return woken

    def _wake_watchers(self, watchers: list[_Watcher]) -> None:
        for w in watchers:
            w.wakeup.set()
        self._dispatcher.signal(watchers)

    # -- compaction ---------------------------------------------------------------------
    async def compact(self, revision: int) -> None:
        """Forget history older than ``revision`` (a no-op when already compacted that far).
        Raises FutureRevision beyond the current revision."""
        self._check_writable()
        if revision > self._index.revision:
            raise FutureRevision(revision, self._index.revision)
        async with self._compact_lock:
            while self._index.compacted < revision:
                self._check_writable()
                step = min(revision, self._index.compacted + _COMPACT_STEP)
                keys, drop = self._index.compaction_plan(step)
                assert self._loop is not None
                op = _Compaction(step, keys, drop, self._loop.create_future())
                self._queue.put(op)
                await op.future

    async def _compact_quietly(self, revision: int) -> None:
        try:
            await self.compact(revision)
        except StorageError as exc:
            log.warning("automatic compaction to %d failed: %s", revision, exc)

    async def _compact_periodically(self) -> None:
        previous = self._index.revision
        while True:
            await asyncio.sleep(self._compaction_interval)
            if previous > self._index.compacted:
                await self._compact_quietly(previous)
            previous = self._index.revision

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task
