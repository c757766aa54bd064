"""Streamed list bodies (server/encode_stream.py) over a real aiohttp server: the bytes equal
encoding the whole document at once, for compact and indented JSON and YAML, empty and
non-empty lists, whether sent whole or in many slices."""
from __future__ import annotations

import orjson
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from extserver.machinery import negotiation as N
from extserver.server import encode_stream
from extserver.server.handlers import dump

HEAD = {"apiVersion": "wardle.example.com/v1beta1", "kind": "FlunderList",
        "metadata": {"resourceVersion": "42", "continue": "abc"}}


def items(n: int) -> list[dict]:
    return [{"apiVersion": "wardle.example.com/v1beta1", "kind": "Flunder",
             "metadata": {"name": f"f-{i}", "labels": {"a": "b: c", "n": "1"}, "annotations": {}},
             "spec": {"text": "line\nnext " + "word " * 30, "list": [1, {"x": None}], "u": "\u00e9", "f": 1.5}}
            for i in range(n)]


OUTPUTS = {"json": N.Output("json"), "pretty": N.Output("json", pretty=True), "yaml": N.Output("yaml")}


@pytest.mark.parametrize("media", list(OUTPUTS))
@pytest.mark.parametrize("n", [0, 1, 300])
@pytest.mark.parametrize("sliced", [False, True])
async def test_streamed_list_bytes_equal_the_whole_document(media, n, sliced, monkeypatch):
    if sliced:  # a write (and a yield to the loop) after every item
        monkeypatch.setattr(encode_stream, "FLUSH_BYTES", 1)
    out = OUTPUTS[media]
    docs = items(n)

    async def handler(request: web.Request) -> web.StreamResponse:
        return await encode_stream.write_list(request, out, dict(HEAD), "items", docs, lambda d: d)

    app = web.Application()
    app.router.add_get("/", handler)
    async with TestClient(TestServer(app)) as client:
        r = await client.get("/")
        body = await r.read()
    assert r.status == 200
    assert body == dump(dict(HEAD, items=docs), out)
    if n <= 1 and not sliced:  # fits in one slice: sent whole, as before
        assert r.headers["Content-Length"] == str(len(body))
    if sliced and n:
        assert r.headers["Transfer-Encoding"] == "chunked"


async def test_compact_json_items_may_be_pre_encoded_bytes():
    out = OUTPUTS["json"]
    docs = items(3)

    async def handler(request: web.Request) -> web.StreamResponse:
        return await encode_stream.write_list(request, out, dict(HEAD), "rows", docs, orjson.dumps)

    app = web.Application()
    app.router.add_get("/", handler)
    async with TestClient(TestServer(app)) as client:
        body = await (await client.get("/")).read()
    assert body == orjson.dumps(dict(HEAD, rows=docs))
    assert yaml.safe_load(body)["rows"][2]["metadata"]["name"] == "f-2"
