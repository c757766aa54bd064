"""The list+watch informer against the kube-apiserver test stand-in, the review cache, and
the kubeclient's credential loading."""
from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

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


CONFIGMAPS = "/api/v1/namespaces/kube-system/configmaps"
CM = "extension-apiserver-authentication"
SELECTOR = f"metadata.name={CM}"
KEY = f"kube-system/{CM}"


async def test_list_watch_resume_and_relist(standin):
    st, d = standin
    st.set_configmap(CM, {"v": "1"})
    st.set_configmap("other", {"v": "x"})
    client = await KubeClient.load(str(st.write_kubeconfig(d / "kc")))
    changes: list[dict] = []
    inf = Informer(client, CONFIGMAPS, name="cm", field_selector=SELECTOR, transform=lambda o: o["data"]["v"])
    inf.on_change = lambda: changes.append(dict(inf.store))
    inf.start()
    try:
        assert await inf.wait_synced(10)
        assert inf.store == {KEY: "1"} and inf.lists == 1  # the field selector keeps "other" out
        st.set_configmap("other", {"v": "y"})
        st.set_configmap(CM, {"v": "2"})
        await wait_for(lambda: inf.store.get(KEY) == "2", "watch event")
        # the server ends the watch: resumed from the last resourceVersion, no relist, nothing lost
        st.close_watches()
        st.set_configmap(CM, {"v": "3"})
        await wait_for(lambda: inf.store.get(KEY) == "3", "event after the watch was resumed")
        assert inf.lists == 1
        # history compacted while the watch is down: 410 -> relist, and the state is complete again
        # (the synchronous stand-in calls below block this loop, so the informer cannot resume
        # its watch in between)
        await wait_for(lambda: st.open_watches("configmaps") == 1, "the resumed watch")
        st.close_watches()
        st.set_configmap(CM, None)
        st.compact()
        await wait_for(lambda: inf.lists == 2, "the relist")
        assert inf.store == {} and changes[-1] == {}
        # and the watch goes on after the relist
        st.set_configmap(CM, {"v": "4"})
        await wait_for(lambda: inf.store.get(KEY) == "4", "event after the relist")
        assert changes[-1] == inf.store == {KEY: "4"} and "other" not in str(changes)
        reads = [parse_qs(urlsplit(p).query) for m, p in st.requests if urlsplit(p).path == CONFIGMAPS]
        assert reads and all(q["fieldSelector"] == [SELECTOR] for q in reads)
        watches = [q for q in reads if q.get("watch") == ["1"]]
        assert len(watches) >= 4  # first watch, resumed, the one that got 410, after the relist
        assert all(q["allowWatchBookmarks"] == ["true"] and q["timeoutSeconds"] and q["resourceVersion"]
                   for q in watches)
    finally:
        await inf.stop()
        await client.close()


async def test_unreachable_server_backs_off(standin):
    st, d = standin
    client = await KubeClient.load(str(st.write_kubeconfig(d / "kc2")))
    client.host = "https://127.0.0.1:1"  # nothing listens there
    inf = Informer(client, CONFIGMAPS, name="cm-down", field_selector=SELECTOR)
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
        assert isinstance((await client.request("GET", CONFIGMAPS))["items"], list)
        assert st.requests[-1] == ("GET", CONFIGMAPS)
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
