"""List bodies written in bounded slices, so one big list never blocks the event loop.

A list (``FooList``, ``Table``, ``PartialObjectMetadataList``) is its fields before the items
(``apiVersion``, ``kind``, ``metadata``, a Table's ``columnDefinitions``), then one array of
items. :func:`write_list` encodes the items one by one and, every ``SLICE_SECONDS`` of work
or ``FLUSH_BYTES`` of output, writes what it has (``StreamResponse.write`` waits while the
client is slow: back-pressure) and yields to the loop, so probes and other requests are
served in between and memory per request stays at one slice beyond the stored items.

The bytes are those of encoding the whole document at once (JSON compact or indented by
orjson, YAML by PyYAML's safe dumper), stitched from the per-item encodings; a list that
fits in one slice is sent whole, with its ``Content-Length``, as before.

The request deadline (``filters.timeout``) is checked at every slice: past it before the
headers went out, encoding stops (the timeout filter has answered 504); after, the
timeout filter aborts the connection and the next write fails, which ends the stream quietly
(a client that went away is no error either)."""
from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Iterable

import orjson
import yaml
from aiohttp import web

from ..filters.timeout import TIMEOUT_MESSAGE, deadline_passed
from ..machinery import errors as E
from ..machinery import negotiation as N

#: encoding work between two writes (the loop serves others in between)
SLICE_SECONDS = 0.002
#: output buffered between two writes at most
FLUSH_BYTES = 1 << 16

#: libyaml's emitter when present: the same text as ``yaml.safe_dump``, several times faster
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _yaml(doc: Any) -> bytes:
    return yaml.dump(doc, Dumper=_YAML_DUMPER, sort_keys=False, default_flow_style=False).encode()


class _Framing:
    """How one media type frames the head, the items and the end of a list document."""

    __slots__ = ("head", "sep", "tail", "empty_tail", "item")

    def __init__(self, out: N.Output, head: dict, key: str):
        kb = key.encode()
        if out.media == "yaml":
            self.head = _yaml(head) + kb + b":\n"
            self.sep, self.tail = b"", b""
            self.empty_tail = _yaml(head) + kb + b": []\n"
            self.item: Callable[[Any], bytes] = lambda d: _yaml([d])
        elif out.pretty:
            h = orjson.dumps(head, option=orjson.OPT_INDENT_2)[:-2]  # without "\n}"
            self.head = h + b',\n  "' + kb + b'": [\n'
            self.sep, self.tail = b",\n", b"\n  ]\n}\n"
            self.empty_tail = h + b',\n  "' + kb + b'": []\n}\n'
            self.item = lambda d: b"    " + orjson.dumps(d, option=orjson.OPT_INDENT_2).replace(b"\n", b"\n    ")
        else:
            h = orjson.dumps(head)[:-1]  # without "}"
            self.head = h + b',"' + kb + b'":['
            self.sep, self.tail = b",", b"]}"
            self.empty_tail = h + b',"' + kb + b'":[]}'
            self.item = lambda d: d if isinstance(d, bytes) else orjson.dumps(d)


async def write_list(request: web.Request, out: N.Output, head: dict, key: str, items: Iterable[Any],
                     convert: Callable[[Any], Any]) -> web.StreamResponse:
    """Send the list document ``head`` + ``{key: [convert(i) for i in items]}``.

    ``convert`` returns the item's dict, or (compact JSON only) its encoded bytes."""
    f = _Framing(out, head, key)
    buf: list[bytes] = []
    size = 0
    resp: web.StreamResponse | None = None
    slice_start = time.perf_counter()
    first = True
    for it in items:
        b = f.item(convert(it))
        if first:
            buf.append(f.head)
            first = False
        else:
            buf.append(f.sep)
        buf.append(b)
        size += len(b)
        if size >= FLUSH_BYTES or time.perf_counter() - slice_start >= SLICE_SECONDS:
            if resp is None:
                if deadline_passed(request):
                    raise E.Timeout(f"Timeout: {TIMEOUT_MESSAGE}")
                resp = web.StreamResponse(status=200)
                resp.content_type = out.content_type
                await resp.prepare(request)
            try:
                await resp.write(b"".join(buf))
            except ConnectionError:  # the client went away, or the deadline aborted the connection
                return resp
            buf.clear()
            size = 0
            await asyncio.sleep(0)
            slice_start = time.perf_counter()
    if first:
        body = f.empty_tail
    else:
        buf.append(f.tail)
        body = b"".join(buf)
    if resp is None:
        return web.Response(body=body, content_type=out.content_type)
    try:
        await resp.write(body)
        await resp.write_eof()
    except ConnectionError:
        pass
    return resp
