"""The etcd v3 storage backend.

The client is a thin adapter (:class:`EtcdClient`) over raw ``grpc.aio`` stubs generated from
etcd's protobufs (shipped by the ``etcd-sdk-python`` package as ``pyetcd.etcdrpc``); it was
chosen by measurement over ``etcd3aio`` (same throughput, see ``docs/storage-etcd.md``)
because it leaves retries, failover and watch resumption under our control.

Semantics (as ``k8s.io/apiserver/pkg/storage/etcd3``):

* keys are stored as ``<prefix><key>`` (``/registry`` + ``/wardle.example.com/flunders/ns/name``);
* create is a Txn comparing ``create_revision == 0``, update and delete a Txn comparing
  ``mod_revision``; a failed compare returns the current value from the Txn's else branch;
* ranges are server-side paged at a fixed revision (``limit``, ``more``, ``count``);
* watches start from a revision with ``prev_kv``; a compacted start raises
  :class:`Compacted`; a broken stream is re-opened (on the next endpoint) from the last
  delivered revision, so no event is dropped or repeated;
* every request carries ``hasleader=true``: a member without a leader refuses at once
  (``etcdserver: no leader``) instead of hanging, and cancels watch streams;
* gets of the newest revision that arrive together (in one turn of the event loop) go to
  etcd as ONE read-only Txn of Range operations (:class:`_GetBatch`): etcd serves it as a
  linearizable read like a Range, every get still sees every write acknowledged before it
  was asked, and the Python gRPC client's cost per call (most of a get's cost here) is paid
  once per batch;
* reads fail over to the next endpoint on UNAVAILABLE/DEADLINE_EXCEEDED; writes fail over
  only when the request provably never reached etcd (connection refused, no leader) — an
  ambiguous failure (timeout, connection lost mid-call) raises :class:`Unavailable` and is
  never retried, so a write that may have been applied is not reported as a conflict;
* a background task compacts, like kube's compactor: every ``compaction_interval`` it
  compacts to the revision it saw one interval earlier, coordinated between replicas with
  a Txn on the ``compact_rev_key`` version.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable, TypeVar

import grpc
import grpc.aio
from pyetcd.etcdrpc import kv_pb2, rpc_pb2 as pb, rpc_pb2_grpc as pb_grpc

from .interface import (Backend, Compacted, Event, FutureRevision, KeyExists, KeyNotFound, KeyValue, RangeResult,
                        RevisionMismatch, StorageError, Unavailable)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: metadata on every call: refuse (UNAVAILABLE "etcdserver: no leader") when the member has no leader
_REQUIRE_LEADER = (("hasleader", "true"),)
#: the key kube's compactor uses to elect one compactor among API server replicas
COMPACT_REV_KEY = b"compact_rev_key"
_COMPACTED_MSG = "required revision has been compacted"
_FUTURE_MSG = "required revision is a future revision"
_RETRYABLE_READ = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def prefix_range_end(prefix: bytes) -> bytes:
    """The exclusive end of the key range holding every key that starts with ``prefix``."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"  # every key


def _not_sent(exc: grpc.aio.AioRpcError) -> bool:
    """True when the call provably did not reach etcd's apply path (safe to retry a write)."""
    if exc.code() != grpc.StatusCode.UNAVAILABLE:
        return False
    details = exc.details() or ""
    return details.startswith("failed to connect to all addresses") or details == "etcdserver: no leader"


def _split_endpoint(endpoint: str) -> tuple[str, bool]:
    """``http(s)://host:port`` or ``host:port`` -> (``host:port``, tls wanted)."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        return endpoint.rstrip("/"), False
    if scheme not in ("http", "https"):
        raise ValueError(f"unsupported etcd endpoint scheme {scheme!r} in {endpoint!r}")
    return rest.rstrip("/"), scheme == "https"


class EtcdClient:
    """Channels to every endpoint, the KV and Watch stubs, and failover.

    ``read`` retries an idempotent call on the next endpoint; ``write`` only when the
    request did not reach etcd. Both are bounded by ``request_timeout`` in total.
    """

    def __init__(self, endpoints: list[str], *, ca_file: str | None = None, cert_file: str | None = None,
                 key_file: str | None = None, request_timeout: float = 10.0):
        if not endpoints:
            raise ValueError("at least one etcd endpoint is required")
        parsed = [_split_endpoint(e) for e in endpoints]
        self.targets = [t for t, _ in parsed]
        self.tls = any(tls for _, tls in parsed) or bool(ca_file or cert_file)
        if bool(cert_file) != bool(key_file):
            raise ValueError("etcd client certificate and key must be given together")
        self._tls_files = (ca_file, cert_file, key_file)
        self.request_timeout = request_timeout
        self._channels: list[grpc.aio.Channel] = []
        self.kv: list[pb_grpc.KVStub] = []
        self.watch: list[pb_grpc.WatchStub] = []
        #: index of the endpoint used for the next call (moves on failure)
        self.current = 0
        self.closed = False

    async def connect(self) -> None:
        """Open one channel per endpoint (reads certificate files off the event loop)."""
        options = [
            ("grpc.max_receive_message_length", -1),
            ("grpc.max_send_message_length", 2 * 1024 * 1024 + 4096),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 2_000),
        ]
        credentials = None
        if self.tls:
            def read(path: str | None) -> bytes | None:
                return Path(path).read_bytes() if path else None
            ca, cert, key = await asyncio.to_thread(lambda: [read(p) for p in self._tls_files])
            credentials = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
        for target in self.targets:
            channel = (grpc.aio.secure_channel(target, credentials, options=options) if credentials
                       else grpc.aio.insecure_channel(target, options=options))
            self._channels.append(channel)
            self.kv.append(pb_grpc.KVStub(channel))
            self.watch.append(pb_grpc.WatchStub(channel))

    async def wait_connected(self, timeout: float) -> bool:
        """Wait (bounded) until at least one endpoint's channel is ready."""
        waits = [asyncio.ensure_future(ch.channel_ready()) for ch in self._channels]
        try:
            done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            return bool(done)
        finally:
            for w in waits:
                w.cancel()

    async def close(self) -> None:
        self.closed = True
        for channel in self._channels:
            await channel.close()

    def rotate(self, failed: int) -> None:
        """Move off endpoint ``failed`` (unless another caller already did)."""
        if self.current == failed:
            self.current = (failed + 1) % len(self.targets)

    async def _call(self, call: Callable[[int, float], Awaitable[T]], retry: Callable[[grpc.aio.AioRpcError], bool],
                    timeout: float | None) -> T:
        if self.closed:
            raise Unavailable("the etcd client is closed")
        deadline = time.monotonic() + (timeout or self.request_timeout)
        attempt = 0
        while True:
            index = self.current
            remaining = deadline - time.monotonic()
            try:
                return await call(index, max(remaining, 0.001))
            except grpc.aio.AioRpcError as exc:
                attempt += 1
                if not retry(exc) or time.monotonic() >= deadline or attempt >= 3 * len(self.targets):
                    raise
                self.rotate(index)
                if attempt % len(self.targets) == 0:  # a whole round failed: back off a little
                    await asyncio.sleep(min(0.05 * attempt, 0.5, max(deadline - time.monotonic(), 0)))

    def read(self, call: Callable[[int, float], Awaitable[T]], timeout: float | None = None) -> Awaitable[T]:
        """Run an idempotent call; fails over on UNAVAILABLE / DEADLINE_EXCEEDED."""
        return self._call(call, lambda e: e.code() in _RETRYABLE_READ, timeout)

    def write(self, call: Callable[[int, float], Awaitable[T]], timeout: float | None = None) -> Awaitable[T]:
        """Run a mutating call; fails over only when the request never reached etcd."""
        return self._call(call, _not_sent, timeout)

    # -- typed helpers ---------------------------------------------------------------------

    def range(self, request: pb.RangeRequest, timeout: float | None = None) -> Awaitable[pb.RangeResponse]:
        return self.read(lambda i, t: self.kv[i].Range(request, timeout=t, metadata=_REQUIRE_LEADER), timeout)

    def put(self, request: pb.PutRequest) -> Awaitable[pb.PutResponse]:
        return self.write(lambda i, t: self.kv[i].Put(request, timeout=t, metadata=_REQUIRE_LEADER))

    def txn(self, request: pb.TxnRequest) -> Awaitable[pb.TxnResponse]:
        return self.write(lambda i, t: self.kv[i].Txn(request, timeout=t, metadata=_REQUIRE_LEADER))

    def read_txn(self, request: pb.TxnRequest) -> Awaitable[pb.TxnResponse]:
        """A Txn of reads only (idempotent: fails over like a Range)."""
        return self.read(lambda i, t: self.kv[i].Txn(request, timeout=t, metadata=_REQUIRE_LEADER))

    def delete_range(self, request: pb.DeleteRangeRequest) -> Awaitable[pb.DeleteRangeResponse]:
        return self.write(lambda i, t: self.kv[i].DeleteRange(request, timeout=t, metadata=_REQUIRE_LEADER))

    def compact(self, revision: int) -> Awaitable[pb.CompactionResponse]:
        request = pb.CompactionRequest(revision=revision)
        return self.write(lambda i, t: self.kv[i].Compact(request, timeout=t, metadata=_REQUIRE_LEADER))

    def watch_stream(self, index: int, create: pb.WatchCreateRequest, stop: asyncio.Event) -> grpc.aio.StreamStreamCall:
        """Open a Watch stream on endpoint ``index`` with one create request; the request side
        stays open until ``stop`` is set (then the server ends the stream)."""
        async def requests() -> AsyncIterator[pb.WatchRequest]:
            yield pb.WatchRequest(create_request=create)
            await stop.wait()
        return self.watch[index].Watch(requests(), metadata=_REQUIRE_LEADER)


def _map_error(exc: grpc.aio.AioRpcError, what: str) -> StorageError:
    details = exc.details() or ""
    if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
        return Unavailable(f"etcd {what}: {exc.code().name}: {details}")
    return StorageError(f"etcd {what}: {exc.code().name}: {details}")


class _GetBatch:
    """Gets of the newest revision, gathered for one turn of the event loop and sent as one
    read-only Txn (one Range when alone); at most :attr:`MAX` per Txn."""

    MAX = 128

    def __init__(self, backend: Etcd3Backend):
        self.backend = backend
        self.pending: list[tuple[bytes, asyncio.Future[pb.RangeResponse]]] = []
        self.scheduled = False

    def get(self, key: bytes) -> asyncio.Future[pb.RangeResponse]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[pb.RangeResponse] = loop.create_future()
        self.pending.append((key, fut))
        if not self.scheduled:
            self.scheduled = True
            loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self.scheduled = False
        while self.pending:
            batch, self.pending = self.pending[:self.MAX], self.pending[self.MAX:]
            self.backend._spawn_read(self._send(batch))

    async def _send(self, batch: list[tuple[bytes, asyncio.Future[pb.RangeResponse]]]) -> None:
        client = self.backend.client
        try:
            if len(batch) == 1:
                results = [await client.range(pb.RangeRequest(key=batch[0][0]))]
            else:
                resp = await client.read_txn(pb.TxnRequest(success=[
                    pb.RequestOp(request_range=pb.RangeRequest(key=k)) for k, _ in batch]))
                results = [r.response_range for r in resp.responses]
                for r in results:  # a Txn's ranges carry no header of their own: the Txn's revision
                    r.header.revision = resp.header.revision
        except grpc.aio.AioRpcError as exc:
            err = await self.backend._read_error(exc, 0, "get")
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(err)
            return
        except BaseException as exc:  # cancelled (closing) or a bug: no get may hang on it
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(Unavailable(f"etcd get failed: {exc!r}"))
            raise
        for (_, fut), r in zip(batch, results):
            if not fut.done():
                fut.set_result(r)


class Etcd3Backend(Backend):
    """:class:`~extserver.storage.interface.Backend` on an etcd v3 cluster."""

    name = "etcd3"

    def __init__(self, endpoints: list[str], *, prefix: str = "/registry", ca_file: str | None = None,
                 cert_file: str | None = None, key_file: str | None = None, compaction_interval: float = 300.0,
                 dial_timeout: float = 5.0, request_timeout: float = 10.0, health_timeout: float = 2.0,
                 watch_retry_timeout: float = 60.0):
        """``endpoints``: ``http(s)://host:port`` or ``host:port`` (TLS when https or a CA is given).
        ``compaction_interval`` <= 0 disables compaction. A watch whose stream keeps failing
        for ``watch_retry_timeout`` seconds ends with :class:`Unavailable`."""
        self.client = EtcdClient(endpoints, ca_file=ca_file, cert_file=cert_file, key_file=key_file,
                                 request_timeout=request_timeout)
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self._prefix_b = self.prefix.encode()
        self.compaction_interval = compaction_interval
        self.dial_timeout = dial_timeout
        self.health_timeout = health_timeout
        self.watch_retry_timeout = watch_retry_timeout
        self._health_key = (self.prefix + "/health").encode()
        self._closed = asyncio.Event()
        self._compactor: asyncio.Task | None = None
        self._watch_calls: set[grpc.aio.StreamStreamCall] = set()
        self._gets = _GetBatch(self)
        self._reads: set[asyncio.Task] = set()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await self.client.connect()
        if not await self.client.wait_connected(self.dial_timeout):
            log.warning("etcd: no endpoint of %s reachable within %.1fs; requests fail until one is",
                        self.client.targets, self.dial_timeout)
        if self.compaction_interval > 0:
            self._compactor = asyncio.create_task(self._compact_loop(), name="etcd3-compactor")

    async def close(self) -> None:
        self._closed.set()
        if self._compactor:
            self._compactor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._compactor
        for call in list(self._watch_calls):
            call.cancel()
        await self.client.close()

    # -- keys and values -------------------------------------------------------------------

    def _key(self, key: str) -> bytes:
        if not key.startswith("/"):
            key = "/" + key
        return self._prefix_b + key.encode()

    def _kv(self, kv: kv_pb2.KeyValue) -> KeyValue:
        return KeyValue(kv.key[len(self._prefix_b):].decode(), kv.value, kv.create_revision, kv.mod_revision)

    async def _read_error(self, exc: grpc.aio.AioRpcError, revision: int, what: str) -> StorageError:
        details = exc.details() or ""
        if _COMPACTED_MSG in details:
            return Compacted(revision, await self.compacted_revision())
        if _FUTURE_MSG in details:
            return FutureRevision(revision, await self.current_revision())
        return _map_error(exc, what)

    # -- reads -----------------------------------------------------------------------------

    async def _range(self, request: pb.RangeRequest, what: str, timeout: float | None = None) -> pb.RangeResponse:
        try:
            return await self.client.range(request, timeout)
        except grpc.aio.AioRpcError as exc:
            raise await self._read_error(exc, request.revision, what) from None

    async def get(self, key: str, revision: int = 0) -> tuple[KeyValue | None, int]:
        if revision:
            resp = await self._range(pb.RangeRequest(key=self._key(key), revision=revision), "get")
        else:
            resp = await self._gets.get(self._key(key))
        return (self._kv(resp.kvs[0]) if resp.kvs else None), revision or resp.header.revision

    def _spawn_read(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._reads.add(task)
        task.add_done_callback(self._reads.discard)

    async def range(self, prefix: str, *, start_key: str | None = None, limit: int = 0,
                    revision: int = 0) -> RangeResult:
        full = self._key(prefix or "/")
        start = self._key(start_key) if start_key else full
        resp = await self._range(pb.RangeRequest(key=max(start, full), range_end=prefix_range_end(full),
                                                 limit=limit, revision=revision), "range")
        return RangeResult([self._kv(kv) for kv in resp.kvs], revision or resp.header.revision, resp.more,
                           resp.count)

    async def count(self, prefix: str) -> int:
        """Number of keys under ``prefix`` (a count-only range; for the storage objects metric)."""
        full = self._key(prefix or "/")
        resp = await self._range(pb.RangeRequest(key=full, range_end=prefix_range_end(full), count_only=True),
                                 "count")
        return resp.count

    async def current_revision(self) -> int:
        resp = await self._range(pb.RangeRequest(key=self._health_key, count_only=True), "current revision")
        return resp.header.revision

    async def compacted_revision(self) -> int:
        """etcd does not report its compacted revision directly: binary-search the oldest
        revision a (count-only) read still accepts. About log2(revision) small reads; used on
        error paths only."""
        current = await self.current_revision()
        low, high = 1, current  # invariant: reading at ``high`` works
        while low < high:
            mid = (low + high) // 2
            try:
                await self.client.range(pb.RangeRequest(key=self._health_key, count_only=True, revision=mid))
            except grpc.aio.AioRpcError as exc:
                if _COMPACTED_MSG not in (exc.details() or ""):
                    raise _map_error(exc, "compacted revision") from None
                low = mid + 1
            else:
                high = mid
        return high if high > 1 else 0

    async def healthy(self) -> tuple[bool, str]:
        """A linearizable single-key read, bounded by ``health_timeout``: fails while quorum is lost."""
        try:
            await self._range(pb.RangeRequest(key=self._health_key, count_only=True), "health check",
                              timeout=self.health_timeout)
        except StorageError as exc:
            return False, str(exc)
        return True, ""

    # -- writes ----------------------------------------------------------------------------

    async def _txn(self, request: pb.TxnRequest, what: str) -> pb.TxnResponse:
        try:
            return await self.client.txn(request)
        except grpc.aio.AioRpcError as exc:
            raise _map_error(exc, what) from None

    async def create(self, key: str, value: bytes) -> KeyValue:
        k = self._key(key)
        resp = await self._txn(pb.TxnRequest(
            compare=[pb.Compare(key=k, target=pb.Compare.CREATE, result=pb.Compare.EQUAL, create_revision=0)],
            success=[pb.RequestOp(request_put=pb.PutRequest(key=k, value=value))],
            failure=[pb.RequestOp(request_range=pb.RangeRequest(key=k))]), "create")
        if not resp.succeeded:
            kvs = resp.responses[0].response_range.kvs
            raise KeyExists(key, self._kv(kvs[0]) if kvs else None)
        rev = resp.header.revision
        return KeyValue(key, value, rev, rev)

    @staticmethod
    def _exists(k: bytes) -> pb.Compare:
        return pb.Compare(key=k, target=pb.Compare.CREATE, result=pb.Compare.GREATER, create_revision=0)

    @staticmethod
    def _modified_at(k: bytes, revision: int) -> pb.Compare:
        return pb.Compare(key=k, target=pb.Compare.MOD, result=pb.Compare.EQUAL, mod_revision=revision)

    def _compare_failed(self, key: str, expected: int, resp: pb.TxnResponse) -> StorageError:
        kvs = resp.responses[0].response_range.kvs
        if not kvs:
            return KeyNotFound(key)
        return RevisionMismatch(key, expected, self._kv(kvs[0]))

    async def update(self, key: str, value: bytes, expected_mod_revision: int) -> KeyValue:
        k = self._key(key)
        compare = [self._modified_at(k, expected_mod_revision)]
        if expected_mod_revision <= 0:  # an absent key has mod_revision 0: never let an update create it
            compare.append(self._exists(k))
        resp = await self._txn(pb.TxnRequest(
            compare=compare,
            success=[pb.RequestOp(request_put=pb.PutRequest(key=k, value=value, prev_kv=True))],
            failure=[pb.RequestOp(request_range=pb.RangeRequest(key=k))]), "update")
        if not resp.succeeded:
            raise self._compare_failed(key, expected_mod_revision, resp)
        rev = resp.header.revision
        return KeyValue(key, value, resp.responses[0].response_put.prev_kv.create_revision, rev)

    async def delete(self, key: str, expected_mod_revision: int = 0) -> tuple[KeyValue, int]:
        k = self._key(key)
        resp = await self._txn(pb.TxnRequest(
            compare=[self._modified_at(k, expected_mod_revision) if expected_mod_revision > 0 else self._exists(k)],
            success=[pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=k, prev_kv=True))],
            failure=[pb.RequestOp(request_range=pb.RangeRequest(key=k))]), "delete")
        if not resp.succeeded:
            raise self._compare_failed(key, expected_mod_revision, resp)
        return self._kv(resp.responses[0].response_delete_range.prev_kvs[0]), resp.header.revision

    async def compact(self, revision: int) -> None:
        """Compact etcd's history to ``revision`` (a no-op when already compacted past it)."""
        try:
            await self.client.compact(revision)
        except grpc.aio.AioRpcError as exc:
            details = exc.details() or ""
            if _COMPACTED_MSG in details:
                return
            if _FUTURE_MSG in details:
                raise FutureRevision(revision, await self.current_revision()) from None
            raise _map_error(exc, "compact") from None

    async def _compact_step(self, compact_time: int, revision: int) -> tuple[int, int]:
        """One round of kube's compactor: claim the round with a Txn on the version of
        ``compact_rev_key``; the winner compacts to ``revision`` (the revision seen one
        interval ago). Returns (the new round, the current revision)."""
        resp = await self._txn(pb.TxnRequest(
            compare=[pb.Compare(key=COMPACT_REV_KEY, target=pb.Compare.VERSION, result=pb.Compare.EQUAL,
                                version=compact_time)],
            success=[pb.RequestOp(request_put=pb.PutRequest(key=COMPACT_REV_KEY, value=str(revision).encode()))],
            failure=[pb.RequestOp(request_range=pb.RangeRequest(key=COMPACT_REV_KEY))]), "compaction claim")
        current = resp.header.revision
        if not resp.succeeded:
            kvs = resp.responses[0].response_range.kvs
            return (kvs[0].version if kvs else 0), current
        if revision:
            await self.compact(revision)
            log.info("etcd: compacted to revision %d", revision)
        return compact_time + 1, current

    async def _compact_loop(self) -> None:
        compact_time, revision = 0, 0
        while not self._closed.is_set():
            await asyncio.sleep(self.compaction_interval)
            try:
                compact_time, revision = await self._compact_step(compact_time, revision)
            except StorageError as exc:
                log.warning("etcd: compaction failed: %s", exc)

    # -- watch -----------------------------------------------------------------------------

    def _event(self, ev: kv_pb2.Event, last_delivered: int) -> Event:
        rev = ev.kv.mod_revision
        prev = self._kv(ev.prev_kv) if ev.HasField("prev_kv") else None
        if ev.type == kv_pb2.Event.DELETE:
            if prev is None:  # the old value was compacted away before we read it: relist
                raise Compacted(last_delivered, rev)
            return Event("DELETE", prev.key, prev, prev, rev)
        kv = self._kv(ev.kv)
        if prev is None and ev.kv.create_revision != rev:
            raise Compacted(last_delivered, rev)
        return Event("PUT", kv.key, kv, prev, rev)

    async def watch(self, prefix: str, after_revision: int) -> AsyncIterator[list[Event]]:
        full = self._key(prefix or "/")
        end = prefix_range_end(full)
        last = after_revision  # the last revision delivered to the consumer
        failing_since: float | None = None
        backoff = 0.1
        while not self._closed.is_set():
            index = self.client.current
            stop = asyncio.Event()
            call = self.client.watch_stream(index, pb.WatchCreateRequest(
                key=full, range_end=end, start_revision=last + 1, prev_kv=True), stop)
            self._watch_calls.add(call)
            try:
                async for resp in call:
                    if resp.compact_revision:
                        raise Compacted(last, resp.compact_revision)
                    if resp.canceled:
                        raise StorageError(f"etcd watch canceled: {resp.cancel_reason}")
                    failing_since, backoff = None, 0.1
                    batch = [self._event(ev, last) for ev in resp.events if ev.kv.mod_revision > last]
                    if batch:
                        last = batch[-1].revision
                        yield batch
                reason = "stream ended"
            except grpc.aio.AioRpcError as exc:
                reason = f"{exc.code().name}: {exc.details()}"
            except asyncio.CancelledError:
                # close() cancels the calls; a cancellation of the consumer's task is re-raised
                task = asyncio.current_task()
                if self._closed.is_set() and task is not None and not task.cancelling():
                    return
                raise
            finally:
                stop.set()
                call.cancel()
                self._watch_calls.discard(call)
            if self._closed.is_set():
                return
            now = time.monotonic()
            failing_since = failing_since or now
            if now - failing_since > self.watch_retry_timeout:
                raise Unavailable(f"etcd watch: {reason}")
            log.info("etcd watch on %s broke (%s); resuming after revision %d",
                     self.client.targets[index], reason, last)
            self.client.rotate(index)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
