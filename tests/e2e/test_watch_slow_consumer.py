"""kube's slow-consumer rule against the real server (both backends): a watcher that stops
reading is terminated and its connection closed, while the other watchers get every event."""
from __future__ import annotations

import json
import socket
import ssl
import threading
import time

from tests.e2e.harness import API, FL_B, flunder

BIG = "x" * 200_000  # an annotation large enough that a few events fill the socket buffers
FORCED = "watcher close due to unresponsiveness"
LAST = "after-2"


def stalled_watch(server, path: str, rv: str) -> ssl.SSLSocket:
    """A watch over a raw TLS socket with a tiny receive buffer whose body is never read."""
    ctx = ssl.create_default_context(cafile=str(server.ca))
    ctx.load_cert_chain(*server.client_cert)
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", server.port))
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.sendall(f"GET {path}?watch=1&resourceVersion={rv} HTTP/1.1\r\nHost: localhost\r\n"
              "Accept: application/json\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)  # byte by byte: nothing of the body is read
    assert head.startswith(b"HTTP/1.1 200"), head
    return s


def test_a_stalled_watcher_is_closed_and_the_others_get_every_event(server, ns):
    api = API(server)
    path = f"{FL_B}/namespaces/{ns}/flunders"
    rv = api.get(path).json()["metadata"]["resourceVersion"]
    received: list[list[str]] = [[], []]
    streams = []
    for i in range(2):
        r = server.session().get(server.url + path, params={"watch": "1", "resourceVersion": rv},
                                 stream=True, timeout=60)
        assert r.status_code == 200
        streams.append(r)

    def read(i: int) -> None:
        for line in streams[i].iter_lines(chunk_size=1 << 16):
            if line:
                received[i].append(json.loads(line)["object"]["metadata"]["name"])
                if received[i][-1] == LAST:
                    break
        streams[i].close()

    readers = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(2)]
    for t in readers:
        t.start()
    stalled = stalled_watch(server, path, rv)
    log_start = len(server.output)
    names = []
    for i in range(200):  # until the server gives up on the stalled watcher (bounded)
        name = f"big-{i}"
        obj = flunder(name)
        obj["metadata"]["annotations"] = {"fill": BIG}
        assert api.post(path, obj).status_code == 201
        names.append(name)
        if any(FORCED in line for line in server.output[log_start:]):
            break
    assert any(FORCED in line for line in server.output[log_start:]), "the stalled watcher was never closed"
    # a few more events after the cut: the others keep receiving
    for i in range(3):
        name = f"after-{i}"
        assert api.post(path, flunder(name)).status_code == 201
        names.append(name)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(len(r) < len(names) for r in received):
        time.sleep(0.1)
    assert received[0] == names and received[1] == names
    # the stalled connection was closed by the server: reading it now ends (EOF or reset)
    # before the stream carried every event
    stalled.settimeout(30)
    body = b""
    try:
        while True:
            chunk = stalled.recv(1 << 16)
            if not chunk:
                break
            body += chunk
    except (ConnectionResetError, ssl.SSLError, OSError) as e:
        assert not isinstance(e, socket.timeout), "the stalled connection is still open"
    assert f'"{LAST}"'.encode() not in body
    stalled.close()
    # the server is healthy and serves new watches
    assert api.get("/readyz").status_code == 200
    w = server.session().get(server.url + path, params={"watch": "1", "resourceVersion": rv,
                                                        "timeoutSeconds": "1"}, timeout=30)
    assert w.status_code == 200 and len(w.text.splitlines()) == len(names)

