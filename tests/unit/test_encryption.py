"""Encryption at rest: kube's EncryptionConfiguration, its stored format, key rotation,
and the ciphertext really being what etcd holds."""
from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import AsyncIterator

import pytest
import yaml
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl.secret import SecretBox

from extserver.storage.embedded import EmbeddedBackend
from extserver.storage.encryption import (
    DecryptionError,
    EncryptingBackend,
    Transformer,
    encryption_config_from_dict,
    load_encryption_config,
)
from extserver.storage.interface import KeyExists, RevisionMismatch
from tests.etcd_cluster import etcd_backend

RESOURCE = "flunders.wardle.example.com"
KEY1 = bytes(range(32))
KEY2 = bytes(range(100, 132))
PLAIN = b'{"kind":"Flunder","spec":{"reference":"top-secret-value"}}'


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def config(*providers: dict, resources: list[str] | None = None) -> dict:
    return {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
            "resources": [{"resources": resources or [RESOURCE], "providers": list(providers)}]}


def keyed(kind: str, *keys: tuple[str, bytes]) -> dict:
    return {kind: {"keys": [{"name": n, "secret": b64(k)} for n, k in keys]}}


IDENTITY: dict = {"identity": {}}


def transformer(*providers: dict) -> Transformer:
    return encryption_config_from_dict(config(*providers), RESOURCE)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EmbeddedBackend]:
    backend = EmbeddedBackend(tmp_path / "store", sync="normal", compaction_interval=0)
    await backend.start()
    try:
        yield backend
    finally:
        await backend.close()


# -- the stored format, checked against independent implementations of kube's layout ----

@pytest.mark.parametrize("kind,key", [("aesgcm", KEY1), ("aesgcm", KEY1[:16]), ("aescbc", KEY1),
                                      ("secretbox", KEY1)])
async def test_round_trip_stores_ciphertext_with_the_kube_prefix(store: EmbeddedBackend, kind: str,
                                                                 key: bytes) -> None:
    enc = EncryptingBackend(store, transformer(keyed(kind, ("key1", key))))
    created = await enc.create("/flunders/ns/a", PLAIN)
    assert created.value == PLAIN

    raw, _ = await store.get("/flunders/ns/a")
    assert raw is not None
    prefix = f"k8s:enc:{kind}:v1:key1:".encode()
    assert raw.value.startswith(prefix)
    assert b"top-secret-value" not in raw.value
    body = raw.value[len(prefix):]

    # decrypt the stored bytes without extserver's code: the layout is kube's
    if kind == "aesgcm":  # nonce(12) + ciphertext+tag, the storage key as associated data
        assert AESGCM(key).decrypt(body[:12], body[12:], b"/flunders/ns/a") == PLAIN
    elif kind == "aescbc":  # iv(16) + CBC(PKCS#7)
        decryptor = Cipher(algorithms.AES(key), modes.CBC(body[:16])).decryptor()
        unpadder = padding.PKCS7(128).unpadder()
        padded = decryptor.update(body[16:]) + decryptor.finalize()
        assert unpadder.update(padded) + unpadder.finalize() == PLAIN
    else:  # nonce(24) + NaCl secretbox (tag + ciphertext)
        assert SecretBox(key).decrypt(body) == PLAIN

    got, _ = await enc.get("/flunders/ns/a")
    assert got is not None and got.value == PLAIN
    updated = await enc.update("/flunders/ns/a", PLAIN + b" ", created.mod_revision)
    assert updated.value == PLAIN + b" "
    assert [kv.value for kv in (await enc.range("/flunders/")).kvs] == [PLAIN + b" "]
    prev, _ = await enc.delete("/flunders/ns/a", updated.mod_revision)
    assert prev.value == PLAIN + b" "


async def test_values_written_by_kube_layout_are_read(store: EmbeddedBackend) -> None:
    """Bytes built by hand in kube's format (as kube-apiserver would write them) decrypt."""
    nonce = bytes(12)
    await store.create("/x/gcm", b"k8s:enc:aesgcm:v1:k:" + nonce + AESGCM(KEY1).encrypt(nonce, PLAIN, b"/x/gcm"))
    await store.create("/x/box", b"k8s:enc:secretbox:v1:k:" + bytes(SecretBox(KEY2).encrypt(PLAIN, bytes(24))))
    enc = EncryptingBackend(store, transformer(keyed("aesgcm", ("k", KEY1)), keyed("secretbox", ("k", KEY2))))
    assert [kv.value for kv in (await enc.range("/x/")).kvs] == [PLAIN, PLAIN]


async def test_identity_first_writes_plaintext_and_still_reads_encrypted(store: EmbeddedBackend) -> None:
    old = EncryptingBackend(store, transformer(keyed("aesgcm", ("key1", KEY1))))
    await old.create("/f/encrypted", PLAIN)
    migrating = EncryptingBackend(store, transformer(IDENTITY, keyed("aesgcm", ("key1", KEY1))))
    await migrating.create("/f/plain", PLAIN)
    assert (await store.get("/f/plain"))[0].value == PLAIN  # type: ignore[union-attr]
    assert [kv.value for kv in (await migrating.range("/f/")).kvs] == [PLAIN, PLAIN]

    identity_only = EncryptingBackend(store, transformer(IDENTITY))
    with pytest.raises(DecryptionError, match="identity transformer tried to read encrypted data"):
        await identity_only.get("/f/encrypted")


async def test_aesgcm_binds_the_value_to_its_key(store: EmbeddedBackend) -> None:
    enc = EncryptingBackend(store, transformer(keyed("aesgcm", ("key1", KEY1))))
    await enc.create("/f/a", PLAIN)
    stolen = (await store.get("/f/a"))[0]
    assert stolen is not None
    await store.create("/f/b", stolen.value)  # copied to another key by someone with etcd access
    with pytest.raises(DecryptionError, match="unable to transform key '/f/b'"):
        await enc.get("/f/b")


async def test_a_wrong_key_cannot_read(store: EmbeddedBackend) -> None:
    await EncryptingBackend(store, transformer(keyed("secretbox", ("key1", KEY1)))).create("/f/a", PLAIN)
    other = EncryptingBackend(store, transformer(keyed("secretbox", ("key1", KEY2))))
    with pytest.raises(DecryptionError):
        await other.get("/f/a")


# -- key rotation --------------------------------------------------------------------

async def test_key_rotation_keeps_old_objects_readable(store: EmbeddedBackend) -> None:
    v1 = EncryptingBackend(store, transformer(keyed("aesgcm", ("key1", KEY1))))
    await v1.create("/f/old", b"old object")

    # step 1: add key2 first; the old key stays for reads
    v2 = EncryptingBackend(store, transformer(keyed("aesgcm", ("key2", KEY2), ("key1", KEY1))))
    await v2.create("/f/new", b"new object")
    assert (await store.get("/f/new"))[0].value.startswith(b"k8s:enc:aesgcm:v1:key2:")  # type: ignore[union-attr]
    assert (await store.get("/f/old"))[0].value.startswith(b"k8s:enc:aesgcm:v1:key1:")  # type: ignore[union-attr]
    assert [kv.value for kv in (await v2.range("/f/")).kvs] == [b"new object", b"old object"]

    # rewriting re-encrypts with the new first key
    old, _ = await v2.get("/f/old")
    assert old is not None
    await v2.update("/f/old", old.value, old.mod_revision)
    assert (await store.get("/f/old"))[0].value.startswith(b"k8s:enc:aesgcm:v1:key2:")  # type: ignore[union-attr]

    # step 2: switch provider kind; the aesgcm values stay readable
    v3 = EncryptingBackend(store, transformer(keyed("aescbc", ("cbc1", KEY1)), keyed("aesgcm", ("key2", KEY2))))
    await v3.create("/f/cbc", b"cbc object")
    assert (await store.get("/f/cbc"))[0].value.startswith(b"k8s:enc:aescbc:v1:cbc1:")  # type: ignore[union-attr]
    assert [kv.value for kv in (await v3.range("/f/")).kvs] == [b"cbc object", b"new object", b"old object"]

    # once key1 is gone, nothing needs it any more; without key2 the gcm values are unreadable
    with pytest.raises(DecryptionError):
        await EncryptingBackend(store, transformer(keyed("aescbc", ("cbc1", KEY1)))).get("/f/new")


async def test_conflicts_and_watch_events_carry_plaintext(store: EmbeddedBackend) -> None:
    enc = EncryptingBackend(store, transformer(keyed("aesgcm", ("key1", KEY1))))
    start = await enc.current_revision()
    first = await enc.create("/f/a", b"one")
    with pytest.raises(KeyExists) as exists:
        await enc.create("/f/a", b"two")
    assert exists.value.current == first
    second = await enc.update("/f/a", b"two", first.mod_revision)
    with pytest.raises(RevisionMismatch) as stale:
        await enc.update("/f/a", b"three", first.mod_revision)
    assert stale.value.current == second
    await enc.delete("/f/a")

    watch = enc.watch("/f/", start)
    events = []
    async with asyncio.timeout(30):
        while len(events) < 3:
            events.extend(await anext(watch))
    await watch.aclose()
    assert [(e.type, e.kv.value, e.prev_kv.value if e.prev_kv else None) for e in events] == [
        ("PUT", b"one", None), ("PUT", b"two", b"one"), ("DELETE", b"two", b"two")]


# -- the configuration file -------------------------------------------------------------

def test_providers_are_chosen_by_resource(tmp_path: Path) -> None:
    doc = {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration", "resources": [
        {"resources": ["*.*"], "providers": [keyed("aescbc", ("all", KEY1))]},
        {"resources": ["*.wardle.example.com"], "providers": [keyed("secretbox", ("group", KEY1))]},
        {"resources": ["flunders.wardle.example.com"], "providers": [keyed("aesgcm", ("exact", KEY1)), IDENTITY]},
    ]}
    path = tmp_path / "encryption.yaml"
    path.write_text(yaml.safe_dump(doc))

    def first(resource: str) -> tuple[str, str | None]:
        p = load_encryption_config(path, resource).providers[0]
        return p.kind, (p.keys[0][0] if p.keys else None)

    assert first("flunders.wardle.example.com") == ("aesgcm", "exact")
    assert first("fischers.wardle.example.com") == ("secretbox", "group")
    assert first("widgets.other.example.com") == ("aescbc", "all")
    assert [p.kind for p in load_encryption_config(path, RESOURCE).providers] == ["aesgcm", "identity"]

    only_flunders = tmp_path / "only.yaml"
    only_flunders.write_text(yaml.safe_dump(config(keyed("aesgcm", ("k", KEY1)))))
    assert [p.kind for p in load_encryption_config(only_flunders, "fischers.wardle.example.com").providers] == [
        "identity"]


@pytest.mark.parametrize("doc,message", [
    ({"apiVersion": "v1", "kind": "EncryptionConfig", "resources": []}, "expected kind EncryptionConfiguration"),
    (config(keyed("aesgcm", ("k", b"short"))), "secret is not of the expected length, got 5"),
    (config(keyed("secretbox", ("k", KEY1[:16]))), "expected one of [32]"),
    (config({"aesgcm": {"keys": [{"name": "k", "secret": "not base64!"}]}}), "secrets must be base64 encoded"),
    (config({"aesgcm": {"keys": [{"name": "", "secret": b64(KEY1)}]}}), "name is a mandatory field"),
    (config({"aesgcm": {"keys": []}}), "at least one keys is required"),
    (config({**keyed("aesgcm", ("k", KEY1)), **IDENTITY}), "exactly one of"),
    (config({"kms": {"name": "x", "endpoint": "unix:///kms.sock"}}), "kms provider is not supported"),
    (config(), "providers: at least one"),
])
def test_invalid_configurations_are_rejected(doc: dict, message: str) -> None:
    with pytest.raises(ValueError) as err:
        encryption_config_from_dict(doc, RESOURCE)
    assert message in str(err.value)


def test_an_empty_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        load_encryption_config(tmp_path / "empty.yaml", RESOURCE)


# -- against a real etcd ----------------------------------------------------------------

async def test_etcd_holds_ciphertext_and_the_backend_returns_plaintext(tmp_path: Path) -> None:
    etcd = await etcd_backend(tmp_path / "etcd", prefix="/registry/wardle.example.com")
    enc = EncryptingBackend(etcd, transformer(keyed("aesgcm", ("key1", KEY1))))
    await enc.start()
    try:
        created = await enc.create("/flunders/default/secret-one", PLAIN)

        raw = await asyncio.to_thread(etcd.cluster.get_raw, "/registry/wardle.example.com/flunders/", prefix=True)
        stored = raw["/registry/wardle.example.com/flunders/default/secret-one"]
        assert stored.startswith(b"k8s:enc:aesgcm:v1:key1:")
        assert b"top-secret-value" not in stored
        # the associated data is the full etcd key, as kube-apiserver uses it
        body = stored[len(b"k8s:enc:aesgcm:v1:key1:"):]
        assert AESGCM(KEY1).decrypt(body[:12], body[12:],
                                    b"/registry/wardle.example.com/flunders/default/secret-one") == PLAIN

        got, _ = await enc.get("/flunders/default/secret-one")
        assert got == created and got.value == PLAIN

        rotated = EncryptingBackend(etcd, transformer(keyed("aesgcm", ("key2", KEY2), ("key1", KEY1))))
        await rotated.create("/flunders/default/secret-two", b"second")
        raw = await asyncio.to_thread(etcd.cluster.get_raw, "/registry/wardle.example.com/flunders/", prefix=True)
        assert raw["/registry/wardle.example.com/flunders/default/secret-two"].startswith(b"k8s:enc:aesgcm:v1:key2:")
        assert [kv.value for kv in (await rotated.range("/flunders/")).kvs] == [PLAIN, b"second"]
    finally:
        await enc.close()
