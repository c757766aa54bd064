"""Provider storage for any computed kind (not metrics): a ``Clock`` group served by the real
ExtServer application in-process (aiohttp's test server, no TLS): discovery shows exactly the
provider's verbs, Table columns from the strategy, label and field selectors applied, watch
when the provider offers it, 405 for writes, 503/504 for a failing or slow provider."""
from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from extserver.api import APIGroup, KubeObject, ObjectMeta, Strategy, TableColumn, name_column
from extserver.auth.user import UserInfo
from extserver.providers.provider import Provider, SourceUnavailable
from extserver.server.app import ExtServer
from extserver.server.handlers import HandlerConfig
from extserver.storage.embedded import EmbeddedBackend

BASE = "/apis/time.example.com/v1"


class Clock(KubeObject):
    zone: str = ""
    offset: int = 0


class ClockStrategy(Strategy[Clock]):
    selectable_field_names = ("zone",)

    def selectable_fields(self, obj):
        return {"zone": obj.zone}

    def table_columns(self):
        return [name_column(), TableColumn("Offset", lambda o: o.offset, type="integer")]


class Clocks(Provider[Clock]):
    def __init__(self) -> None:
        self.mode = ""
        self.calls: list[tuple] = []
        self.events: asyncio.Queue = asyncio.Queue()

    async def list(self, namespace, label_selector, field_selector):
        self.calls.append((namespace, str(label_selector) if label_selector else None,
                           str(field_selector) if field_selector else None))
        if self.mode == "down":
            raise SourceUnavailable("the time source is down", retry_after=7)
        if self.mode == "bug":
            raise KeyError("secret detail")
        if self.mode == "slow":
            await asyncio.sleep(30)
        if self.mode == "junk":
            return [{"metadata": {"name": "not-a-clock"}}]
        # returns everything: the framework applies the selectors
        return [Clock(metadata=ObjectMeta(name=n, labels={"hemisphere": h}), zone=z, offset=o)
                for n, h, z, o in [("utc", "none", "Etc/UTC", 0), ("cet", "north", "Europe/Paris", 1),
                                   ("nzst", "south", "Pacific/Auckland", 12)]]

    async def watch(self, namespace, label_selector, field_selector):
        while True:
            yield await self.events.get()


class StaticClocks(Clocks):
    watch = Provider.watch  # this one cannot stream


@pytest.fixture
async def client(tmp_path):
    clocks, static = Clocks(), StaticClocks()
    g = APIGroup("time.example.com", versions=["v1"])
    g.resource("clocks", hub=Clock, namespaced=False, strategy=ClockStrategy(), provider=clocks).version("v1")
    g.resource("staticclocks", hub=Clock, kind="StaticClock", namespaced=False, strategy=ClockStrategy(),
               provider=static).version("v1")

    async def authenticate(request):
        return UserInfo("tester", groups=("system:masters",))

    async def authorize(user, info):
        return True, ""

    server = ExtServer([g], EmbeddedBackend(tmp_path / "store"), authenticate=authenticate, authorize=authorize,
                       handler_config=HandlerConfig(provider_timeout=0.3))
    await server.start()
    c = TestClient(TestServer(server.make_app()))
    await c.start_server()
    c.clocks, c.static = clocks, static  # type: ignore[attr-defined]
    yield c
    await c.close()
    await server.stop()


async def test_discovery_shows_the_providers_verbs(client):
    doc = await (await client.get(BASE)).json()
    assert {r["name"]: r["verbs"] for r in doc["resources"]} == {"clocks": ["get", "list", "watch"],
                                                               "staticclocks": ["get", "list"]}


async def test_list_get_and_selectors(client):
    r = await client.get(f"{BASE}/clocks")
    doc = await r.json()
    assert r.status == 200
    assert [i["metadata"]["name"] for i in doc["items"]] == ["cet", "nzst", "utc"]  # sorted as a store lists
    assert doc["kind"] == "ClockList" and doc["metadata"] == {}
    assert doc["items"][0] == {"apiVersion": "time.example.com/v1", "kind": "Clock",
                               "metadata": {"name": "cet", "labels": {"hemisphere": "north"}},
                               "zone": "Europe/Paris", "offset": 1}
    r = await client.get(f"{BASE}/clocks", params={"labelSelector": "hemisphere in (north,south)",
                                                   "fieldSelector": "zone!=Europe/Paris"})
    assert [i["metadata"]["name"] for i in (await r.json())["items"]] == ["nzst"]
    assert client.clocks.calls[-1] == ("", "hemisphere in (north,south)", "zone!=Europe/Paris")
    r = await client.get(f"{BASE}/clocks", params={"fieldSelector": "spec.nope=1"})
    assert r.status == 400
    r = await client.get(f"{BASE}/clocks/utc")
    assert (await r.json())["zone"] == "Etc/UTC"
    r = await client.get(f"{BASE}/clocks/mars")
    assert r.status == 404
    assert (await r.json())["message"] == 'clocks.time.example.com "mars" not found'


async def test_table_columns_come_from_the_strategy(client):
    r = await client.get(f"{BASE}/clocks", headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
    t = await r.json()
    assert [c["name"] for c in t["columnDefinitions"]] == ["Name", "Offset"]
    assert [row["cells"] for row in t["rows"]] == [["cet", 1], ["nzst", 12], ["utc", 0]]
    assert t["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


async def test_writes_are_405_and_watch_only_where_offered(client):
    for method, path in [("POST", f"{BASE}/clocks"), ("PUT", f"{BASE}/clocks/utc"), ("DELETE", f"{BASE}/clocks/utc"),
                         ("PATCH", f"{BASE}/clocks/utc"), ("DELETE", f"{BASE}/clocks")]:
        r = await client.request(method, path, data=b"{}", headers={"Content-Type": "application/merge-patch+json"})
        assert (method, path, r.status, (await r.json())["reason"]) == (method, path, 405, "MethodNotAllowed")
    r = await client.get(f"{BASE}/staticclocks", params={"watch": "1"})
    assert r.status == 405
    assert (await r.json())["message"] == 'watch is not supported on resources of kind "staticclocks.time.example.com"'


async def test_watch_streams_the_providers_events_with_selectors(client):
    r = await client.get(f"{BASE}/clocks", params={"watch": "1", "labelSelector": "hemisphere=south",
                                                   "timeoutSeconds": "5"})
    assert r.status == 200
    q = client.clocks.events
    q.put_nowait(("ADDED", Clock(metadata=ObjectMeta(name="cet", labels={"hemisphere": "north"}))))
    q.put_nowait(("ADDED", Clock(metadata=ObjectMeta(name="nzst", labels={"hemisphere": "south"}), offset=12)))
    line = await asyncio.wait_for(r.content.readline(), 5)
    ev = json.loads(line)
    assert ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == "nzst"  # the north one was filtered
    r.close()


async def test_failures_become_503_and_504(client):
    client.clocks.mode = "down"
    r = await client.get(f"{BASE}/clocks")
    assert (r.status, r.headers["Retry-After"]) == (503, "7")
    assert (await r.json())["message"] == "the time source is down"
    client.clocks.mode = "bug"
    r = await client.get(f"{BASE}/clocks/utc")
    body = await r.text()
    assert r.status == 503 and "secret detail" not in body
    assert json.loads(body)["message"] == "the provider of clocks.time.example.com failed to answer"
    client.clocks.mode = "slow"
    r = await client.get(f"{BASE}/clocks")
    assert r.status == 504
    assert (await r.json())["message"] == "Timeout: the provider of clocks.time.example.com did not answer within 0.3s"
    client.clocks.mode = "junk"  # not Clock objects: the provider's fault, not a 500
    r = await client.get(f"{BASE}/clocks")
    assert r.status == 503
    client.clocks.mode = ""
    assert (await client.get(f"{BASE}/clocks")).status == 200


def test_a_provider_kind_cannot_declare_its_own_verbs():
    g = APIGroup("time.example.com", versions=["v1"])
    with pytest.raises(ValueError):
        g.resource("clocks", hub=Clock, provider=Clocks(), verbs=["get", "create"])
