"""Encryption at rest end to end (issue 4, "Must show"): the real server on a real etcd with
``--encryption-provider-config``. etcd holds kube's ``k8s:enc:aesgcm:v1:<key>:`` prefix and
ciphertext, the API returns plaintext, resources the configuration does not name stay in
plaintext (identity), and keys rotate: with a new first key old objects stay readable and
new writes use the new key; once the old key is removed, objects still under it cannot be
read (so the data really depends on the key)."""
from __future__ import annotations

import base64
import os
import shutil
import uuid
from pathlib import Path

import pytest

from tests.e2e.harness import API, ServerProcess, flunder, new_tmp_dir

GROUP = "wardle.example.com"
FISCHERS = f"/apis/{GROUP}/v1alpha1/fischers"


def fl_path(ns: str, name: str = "") -> str:
    base = f"/apis/{GROUP}/v1beta1/namespaces/{ns}/flunders"
    return f"{base}/{name}" if name else base


def write_config(path: Path, keys: list[tuple[str, bytes]]) -> Path:
    """An ``EncryptionConfiguration`` encrypting flunders with aesgcm ``keys`` (first one writes)."""
    key_lines = "".join(f"            - name: {name}\n              secret: {base64.b64encode(secret).decode()}\n"
                        for name, secret in keys)
    path.write_text(
        "apiVersion: apiserver.config.k8s.io/v1\n"
        "kind: EncryptionConfiguration\n"
        "resources:\n"
        f"  - resources: [flunders.{GROUP}]\n"
        "    providers:\n"
        "      - aesgcm:\n"
        "          keys:\n"
        f"{key_lines}"
        "      - identity: {}\n")
    return path


def secret_flunder(name: str, marker: str) -> dict:
    return flunder(name, spec={"flunderReference": marker, "referenceType": "Flunder"})


@pytest.fixture
def encrypted_server(etcd):
    data = new_tmp_dir("extserver-enc-")
    srv = ServerProcess(data, backend="etcd3", etcd_endpoints=etcd.endpoints,
                        etcd_prefix=f"/registry-{uuid.uuid4().hex[:8]}")
    yield srv
    srv.stop()
    shutil.rmtree(data, ignore_errors=True)


def restart(srv: ServerProcess, config: Path) -> API:
    srv.stop()
    srv.extra_args = ["--encryption-provider-config", str(config)]
    srv.port = 0
    srv.start()
    return API(srv)


def test_values_are_encrypted_in_etcd_and_keys_rotate(etcd, encrypted_server):
    srv = encrypted_server
    key1, key2 = os.urandom(32), os.urandom(32)
    ns = "enc-" + uuid.uuid4().hex[:6]
    raw_key = f"{srv.etcd_prefix}/{GROUP}/flunders/{ns}/"

    def raw(name: str) -> bytes:
        return etcd.get_raw(raw_key + name)[raw_key + name]

    # 1. one key
    api = restart(srv, write_config(srv.data_dir / "enc-1.yaml", [("key1", key1)]))
    for name in ("first", "old-only"):
        r = api.post(fl_path(ns), secret_flunder(name, f"marker-{name}"))
        assert r.status_code == 201, r.text
    stored = raw("first")
    assert stored.startswith(b"k8s:enc:aesgcm:v1:key1:")
    assert b"marker-first" not in stored and b"Flunder" not in stored  # ciphertext, not JSON
    got = api.get(fl_path(ns, "first"))
    assert got.status_code == 200 and got.json()["spec"]["flunderReference"] == "marker-first"
    listed = api.get(fl_path(ns)).json()["items"]
    assert [i["spec"]["flunderReference"] for i in listed] == ["marker-first", "marker-old-only"]
    cached = api.get(fl_path(ns), params={"resourceVersion": "0"}).json()["items"]
    assert [i["spec"]["flunderReference"] for i in cached] == ["marker-first", "marker-old-only"]
    # a resource the configuration does not name is stored as is (identity), as in kube
    fischer = "enc-f-" + uuid.uuid4().hex[:6]
    r = api.post(FISCHERS, {"apiVersion": f"{GROUP}/v1alpha1", "kind": "Fischer", "metadata": {"name": fischer},
                            "disallowedFlunders": ["nope"]})
    assert r.status_code == 201, r.text
    fischer_key = f"{srv.etcd_prefix}/{GROUP}/fischers/{fischer}"
    assert etcd.get_raw(fischer_key)[fischer_key].startswith(b"{")

    # 2. rotation: a new first key, the old one second
    api = restart(srv, write_config(srv.data_dir / "enc-2.yaml", [("key2", key2), ("key1", key1)]))
    got = api.get(fl_path(ns, "first"))
    assert got.status_code == 200 and got.json()["spec"]["flunderReference"] == "marker-first"
    assert raw("first").startswith(b"k8s:enc:aesgcm:v1:key1:")  # reading does not rewrite
    r = api.post(fl_path(ns), secret_flunder("second", "marker-second"))
    assert r.status_code == 201, r.text
    assert raw("second").startswith(b"k8s:enc:aesgcm:v1:key2:")
    obj = got.json()
    obj["metadata"]["labels"] = {"rewritten": "yes"}
    assert api.put(fl_path(ns, "first"), obj).status_code == 200  # a write re-encrypts with key2
    assert raw("first").startswith(b"k8s:enc:aesgcm:v1:key2:")
    assert raw("old-only").startswith(b"k8s:enc:aesgcm:v1:key1:")

    # 3. the old key removed: what was rewritten reads, what is still under key1 does not
    api = restart(srv, write_config(srv.data_dir / "enc-3.yaml", [("key2", key2)]))
    for name in ("first", "second"):
        got = api.get(fl_path(ns, name))
        assert got.status_code == 200 and got.json()["spec"]["flunderReference"] == f"marker-{name}"
    r = api.get(fl_path(ns, "old-only"))
    assert r.status_code == 500, r.text
    assert r.json()["reason"] == "InternalError"
