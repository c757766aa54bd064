"""The list+watch informer against the kube-apiserver test stand-in, the review cache, and
the kubeclient's credential loading."""
from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import pytest

from extserver.auth.cache import TTLCache
from extserver.auth.informer import Informer
from extserver.auth.kubeclient import ApiError, Backoff, KubeClient, KubeConfigError, with_retries
from tests.standin.kube_apiserver_standin import KubeAPIServerStandin


@pytest.fixture(scope="module")
def standin():
    d = Path(tempfile.mkdtemp(prefix="informer-"))
    st = KubeAPIServerStandin(d).start()
    yield st, d
    st.stop()
    shutil.rmtree(d, ignore_errors=True)


async def wait_for(pred, what: str, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if pred():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_list_watch_resume_and_relist(standin):
    st, d = standin
    st.set_namespace("a")
    client = await KubeClient.load(str(st.write_kubeconfig(d / "kc")))
    changes: list[dict] = []
    inf = Informer(client, "/api/v1/namespaces", name="ns", transform=lambda o: o["status"]["phase"])
    inf.on_change = lambda: changes.append(dict(inf.store))
    inf.start()
    try:
        assert await inf.wait_synced(10)
        assert inf.store["a"] == "Active" and inf.lists == 1
        st.set_namespace("b")
        st.set_namespace("a", "Terminating")
        await wait_for(lambda: inf.store.get("a") == "Terminating" and "b" in inf.store, "watch events")
        # the server ends the watch: resumed from the last resourceVersion, no relist, nothing lost
        st.close_watches()
        st.set_namespace("c")
        await wait_for(lambda: "c" in inf.store, "event after the watch was resumed")
        assert inf.lists == 1
        # history compacted while the watch is down: 410 -> relist, and the state is complete again
        await wait_for(lambda: st.open_watches("namespaces") == 1, "the resumed watch")
        st.close_watches()
        st.set_namespace("b", None)
        st.compact()
        await wait_for(lambda: inf.lists == 2, "the relist")
        assert inf.store == {"a": "Terminating", "c": "Active"}
        assert changes[-1] == inf.store
        watch_requests = [p for m, p in st.requests if "watch=1" in p and "/namespaces?" in p]
        assert all("allowWatchBookmarks=true" in p and "timeoutSeconds=" in p for p in watch_requests)
    finally:
        await inf.stop()
        await client.close()


async def test_unreachable_server_backs_off(standin):
    st, d = standin
    client = await KubeClient.load(str(st.write_kubeconfig(d / "kc2")))
    client.host = "https://127.0.0.1:1"  # nothing listens there
    inf = Informer(client, "/api/v1/namespaces", name="ns-down")
    inf.MIN_BACKOFF = 0.05
    inf.start()
    try:
        assert not await inf.wait_synced(0.5)
        assert inf.last_error and not inf.synced.is_set()
    finally:
        await inf.stop()
        await client.close()


async def test_token_credentials(standin):
    st, d = standin
    client = await KubeClient.load(str(st.write_kubeconfig(d / "kc-token", use_token=True)))
    try:
        await client.request("GET", "/api/v1/namespaces")
        assert st.requests[-1] == ("GET", "/api/v1/namespaces")
    finally:
        await client.close()


async def test_bad_kubeconfig(tmp_path):
    with pytest.raises(KubeConfigError):
        await KubeClient.load(str(tmp_path / "missing"))


async def test_retries_only_retryable_errors():
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ApiError(500, "etcd hiccup", reason="InternalError")
        return "ok"

    loop = asyncio.get_running_loop()
    assert await with_retries(flaky, Backoff(0.001, 1.0, 0.0, 5), loop.time() + 10) == "ok"
    assert len(calls) == 3

    async def forbidden() -> str:
        calls.append(1)
        raise ApiError(403, "no")

    calls.clear()
    with pytest.raises(ApiError):
        await with_retries(forbidden, Backoff(0.001, 1.0, 0.0, 5), loop.time() + 10)
    assert len(calls) == 1


async def test_cache_single_flight_and_ttl():
    now = [0.0]
    cache: TTLCache[str] = TTLCache(max_size=2, clock=lambda: now[0])
    started = asyncio.Event()
    release = asyncio.Event()
    loads: list[str] = []

    async def load() -> str:
        loads.append("k")
        started.set()
        await release.wait()
        return "v"

    waiters = [asyncio.create_task(cache.get_or_load("k", load, lambda v: 10)) for _ in range(5)]
    await started.wait()
    release.set()
    assert await asyncio.gather(*waiters) == ["v"] * 5
    assert loads == ["k"]  # one load for five concurrent misses
    assert await cache.get_or_load("k", load, lambda v: 10) == "v" and loads == ["k"]
    now[0] = 10.5
    assert await cache.get_or_load("k", load, lambda v: 10) == "v" and loads == ["k", "k"]
    # bounded: the least recently used entry goes
    cache.put("a", "1", 100)
    cache.put("b", "2", 100)
    assert cache.get("k") == (False, None) and len(cache) == 2

    async def boom() -> str:
        raise ApiError(0, "down")

    with pytest.raises(ApiError):  # errors reach the caller and are not cached
        await cache.get_or_load("e", boom, lambda v: 10)
    assert cache.get("e") == (False, None)
