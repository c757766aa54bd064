"""Encryption at rest, configured with kube's ``EncryptionConfiguration``.

The file format (``apiserver.config.k8s.io/v1``, ``kind: EncryptionConfiguration``) and the
stored bytes match ``k8s.io/apiserver`` so values written by either can be read by the other:

=============  ===========================================================================
provider       stored value
=============  ===========================================================================
``aesgcm``     ``k8s:enc:aesgcm:v1:<key>:`` + nonce(12) + AES-GCM(ciphertext+tag); the
               additional authenticated data is the full storage key (``<prefix><key>``)
``aescbc``     ``k8s:enc:aescbc:v1:<key>:`` + iv(16) + AES-CBC(PKCS#7 padded plaintext)
``secretbox``  ``k8s:enc:secretbox:v1:<key>:`` + nonce(24) + XSalsa20-Poly1305 box
               (tag then ciphertext, as NaCl's ``secretbox.Seal``)
``identity``   the plaintext; refuses to "read" a value that starts with ``k8s:enc:``
=============  ===========================================================================

The first provider (and its first key) encrypts new writes; reads try every provider
and key whose prefix matches, so keys rotate by putting a new key first. ``cryptography``
has no XSalsa20, so ``secretbox`` needs PyNaCl (libsodium); it is imported only when a
secretbox provider is configured.
"""
from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Protocol

import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .interface import (Backend, DelegatingBackend, Event, KeyExists, KeyValue, MappedFeed, RangeResult, RevisionMismatch,
                        StorageError, WatchFeed)

API_VERSION = "apiserver.config.k8s.io/v1"
KIND = "EncryptionConfiguration"
ENCRYPTED_MARK = b"k8s:enc:"
_AES_KEY_SIZES = (16, 24, 32)
_SECRETBOX_KEY_SIZES = (32,)


class DecryptionError(StorageError):
    """A stored value could not be decrypted with any configured provider."""


class _Cipher(Protocol):
    def seal(self, data: bytes, aad: bytes) -> bytes: ...

    def open(self, data: bytes, aad: bytes) -> bytes: ...


class _AESGCM:
    def __init__(self, key: bytes):
        self._aead = AESGCM(key)

    def seal(self, data: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, data, aad)

    def open(self, data: bytes, aad: bytes) -> bytes:
        if len(data) < 12:
            raise ValueError("the stored data was shorter than the required size")
        try:
            return self._aead.decrypt(data[:12], data[12:], aad)
        except InvalidTag:
            raise ValueError("message authentication failed") from None


class _AESCBC:
    def __init__(self, key: bytes):
        self._algorithm = algorithms.AES(key)

    def seal(self, data: bytes, aad: bytes) -> bytes:
        iv = os.urandom(16)
        padder = padding.PKCS7(128).padder()
        padded = padder.update(data) + padder.finalize()
        encryptor = Cipher(self._algorithm, modes.CBC(iv)).encryptor()
        return iv + encryptor.update(padded) + encryptor.finalize()

    def open(self, data: bytes, aad: bytes) -> bytes:
        if len(data) < 16:
            raise ValueError("the stored data was shorter than the required size")
        if len(data) % 16:
            raise ValueError("the stored data is not a multiple of the block size")
        decryptor = Cipher(self._algorithm, modes.CBC(data[:16])).decryptor()
        padded = decryptor.update(data[16:]) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        try:
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise ValueError("invalid padding on input") from None


class _Secretbox:
    def __init__(self, key: bytes):
        try:
            from nacl.exceptions import CryptoError
            from nacl.secret import SecretBox
        except ImportError:  # pragma: no cover - depends on the environment
            raise ValueError("the secretbox provider needs PyNaCl (XSalsa20-Poly1305 is not in "
                             "`cryptography`): pip install pynacl") from None
        self._box = SecretBox(key)
        self._error = CryptoError

    def seal(self, data: bytes, aad: bytes) -> bytes:
        return bytes(self._box.encrypt(data, os.urandom(24)))  # nonce + tag + ciphertext

    def open(self, data: bytes, aad: bytes) -> bytes:
        if len(data) < 24 + 16:
            raise ValueError("the stored data was shorter than the required size")
        try:
            return self._box.decrypt(data)
        except self._error:
            raise ValueError("message authentication failed") from None


_CIPHERS: dict[str, tuple[type, tuple[int, ...]]] = {
    "aesgcm": (_AESGCM, _AES_KEY_SIZES),
    "aescbc": (_AESCBC, _AES_KEY_SIZES),
    "secretbox": (_Secretbox, _SECRETBOX_KEY_SIZES),
}


@dataclass(frozen=True)
class Provider:
    """One entry of ``providers``: a kind and its named keys (none for identity)."""

    kind: str
    keys: tuple[tuple[str, _Cipher], ...] = ()

    @property
    def prefix(self) -> bytes:
        return b"" if self.kind == "identity" else f"k8s:enc:{self.kind}:v1:".encode()

    def encrypt(self, data: bytes, aad: bytes) -> bytes:
        if self.kind == "identity":
            return data
        name, cipher = self.keys[0]
        return self.prefix + name.encode() + b":" + cipher.seal(data, aad)

    def decrypt(self, data: bytes, aad: bytes, errors: list[str]) -> bytes | None:
        """The plaintext, or None (with the reasons appended to ``errors``) if this provider
        cannot read ``data``."""
        if self.kind == "identity":
            if data.startswith(ENCRYPTED_MARK):
                errors.append("identity transformer tried to read encrypted data")
                return None
            return data
        if not data.startswith(self.prefix):
            return None
        body = data[len(self.prefix):]
        for name, cipher in self.keys:
            tag = name.encode() + b":"
            if body.startswith(tag):
                try:
                    return cipher.open(body[len(tag):], aad)
                except ValueError as exc:
                    errors.append(f"{self.kind} key {name}: {exc}")
        return None


class Transformer:
    """An ordered list of providers: the first encrypts, all are tried for reads."""

    def __init__(self, providers: list[Provider]):
        if not providers:
            raise ValueError("at least one provider is required")
        self.providers = providers

    def encrypt(self, data: bytes, aad: bytes) -> bytes:
        return self.providers[0].encrypt(data, aad)

    def decrypt(self, data: bytes, aad: bytes) -> bytes:
        errors: list[str] = []
        for provider in self.providers:
            plain = provider.decrypt(data, aad, errors)
            if plain is not None:
                return plain
        raise DecryptionError("; ".join(errors) or "no matching prefix found")


#: what kube uses for a resource that no configuration entry names
IDENTITY = Transformer([Provider("identity")])


# ---------------------------------------------------------------------------------------
# The configuration file
# ---------------------------------------------------------------------------------------

def _provider(entry: Any, where: str) -> Provider:
    if not isinstance(entry, dict) or len(entry) != 1:
        raise ValueError(f"{where}: exactly one of aesgcm, aescbc, secretbox, identity must be given "
                         "per list element")
    (kind, spec), = entry.items()
    if kind == "identity":
        return Provider("identity")
    if kind == "kms":
        raise ValueError(f"{where}: the kms provider is not supported")
    if kind not in _CIPHERS:
        raise ValueError(f"{where}: unknown provider {kind!r} (expected aesgcm, aescbc, secretbox or identity)")
    cipher_type, sizes = _CIPHERS[kind]
    keys = (spec or {}).get("keys") or []
    if not keys:
        raise ValueError(f"{where}.{kind}.keys: at least one keys is required")
    out: list[tuple[str, _Cipher]] = []
    for i, key in enumerate(keys):
        name, secret = key.get("name", ""), key.get("secret", "")
        if not name:
            raise ValueError(f"{where}.{kind}.keys[{i}].name: name is a mandatory field for a key")
        if not secret:
            raise ValueError(f"{where}.{kind}.keys[{i}].secret: secret is a mandatory field for a key")
        try:
            raw = base64.b64decode(secret, validate=True)
        except ValueError:
            raise ValueError(f"{where}.{kind}.keys[{i}].secret: secrets must be base64 encoded") from None
        if len(raw) not in sizes:
            raise ValueError(f"{where}.{kind}.keys[{i}].secret: secret is not of the expected length, "
                             f"got {len(raw)}, expected one of {list(sizes)}")
        out.append((name, cipher_type(raw)))
    return Provider(kind, tuple(out))


def _matches(pattern: str, resource: str) -> int:
    """0 = no match; higher = more specific (3 exact, 2 ``*.<group>``, 1 ``*.*``)."""
    if pattern == resource:
        return 3
    res_group = resource.partition(".")[2]
    name, _, group = pattern.partition(".")
    if name == "*" and group == "*":
        return 1
    if name == "*" and group == res_group:
        return 2
    return 0


def encryption_config_from_dict(doc: Any, resource: str) -> Transformer:
    """The transformer for ``resource`` (``<plural>.<group>``) from a parsed
    ``EncryptionConfiguration``: the most specific entry naming it (exact, ``*.<group>``,
    ``*.*``), or identity if none does. Raises ValueError on an invalid configuration."""
    if not isinstance(doc, dict) or doc.get("kind") != KIND or doc.get("apiVersion") != API_VERSION:
        raise ValueError(f"expected kind {KIND} with apiVersion {API_VERSION}")
    entries = doc.get("resources") or []
    if not entries:
        raise ValueError("resources: at least one resources is required")
    best: tuple[int, list[Provider]] = (0, [])
    for i, entry in enumerate(entries):
        names = entry.get("resources") or []
        if not names:
            raise ValueError(f"resources[{i}].resources: at least one resources[{i}].resources is required")
        raw_providers = entry.get("providers") or []
        if not raw_providers:
            raise ValueError(f"resources[{i}].providers: at least one resources[{i}].providers is required")
        providers = [_provider(p, f"resources[{i}].providers[{j}]") for j, p in enumerate(raw_providers)]
        score = max(_matches(n, resource) for n in names)
        if score > best[0]:
            best = (score, providers)
    return Transformer(best[1]) if best[0] else IDENTITY


def load_encryption_config(path: str | Path, resource: str) -> Transformer:
    """Read an ``EncryptionConfiguration`` file (``--encryption-provider-config``) and return
    the transformer for ``resource``. Reads a file: call it at startup, or in a thread."""
    text = Path(path).read_text()
    if not text.strip():
        raise ValueError(f"encryption provider configuration file {str(path)!r} is empty")
    return encryption_config_from_dict(yaml.safe_load(text), resource)


class PerResourceTransformer:
    """One configuration for a backend shared by every resource: the transformer is chosen
    per key (``/<group>/<plural>/...`` → resource ``<plural>.<group>``), as kube chooses one
    per resource."""

    def __init__(self, doc: Any):
        self._doc = doc
        self._by_resource: dict[str, Transformer] = {}
        encryption_config_from_dict(doc, "validate.the.configuration")  # raises ValueError now

    def for_key(self, key: str) -> Transformer:
        parts = key.split("/", 3)  # "", group, plural, rest
        resource = f"{parts[2]}.{parts[1]}" if len(parts) > 2 else key
        t = self._by_resource.get(resource)
        if t is None:
            t = self._by_resource[resource] = encryption_config_from_dict(self._doc, resource)
        return t


def load_encryption_config_per_resource(path: str | Path) -> PerResourceTransformer:
    """Read ``--encryption-provider-config`` for a backend shared by all resources."""
    text = Path(path).read_text()
    if not text.strip():
        raise ValueError(f"encryption provider configuration file {str(path)!r} is empty")
    return PerResourceTransformer(yaml.safe_load(text))


# ---------------------------------------------------------------------------------------
# The backend wrapper
# ---------------------------------------------------------------------------------------

class EncryptingBackend(DelegatingBackend):
    """Wraps any backend: values are encrypted on the way in and decrypted on the way out
    (results, conflict errors and watch events alike). The additional authenticated data
    is ``authenticated_prefix + key``; it defaults to the inner backend's ``prefix`` so it
    equals the full etcd key, as in kube."""

    def __init__(self, inner: Backend, transformer: "Transformer | PerResourceTransformer", *,
                 authenticated_prefix: str | None = None):
        super().__init__(inner)
        self.transformer = transformer
        self._aad_prefix = getattr(inner, "prefix", "") if authenticated_prefix is None else authenticated_prefix

    def _for(self, key: str) -> Transformer:
        t = self.transformer
        return t.for_key(key) if isinstance(t, PerResourceTransformer) else t

    def _aad(self, key: str) -> bytes:
        return (self._aad_prefix + key).encode()

    def _open(self, kv: KeyValue) -> KeyValue:
        try:
            value = self._for(kv.key).decrypt(kv.value, self._aad(kv.key))
        except DecryptionError as exc:
            raise DecryptionError(f"unable to transform key {self._aad_prefix + kv.key!r}: {exc}") from None
        return KeyValue(kv.key, value, kv.create_revision, kv.mod_revision)

    def _open_opt(self, kv: KeyValue | None) -> KeyValue | None:
        return None if kv is None else self._open(kv)

    def _event(self, ev: Event) -> Event:
        return Event(ev.type, ev.key, self._open(ev.kv), self._open_opt(ev.prev_kv), ev.revision)

    async def get(self, key: str, revision: int = 0) -> tuple[KeyValue | None, int]:
        kv, rev = await self.inner.get(key, revision)
        return self._open_opt(kv), rev

    async def range(self, prefix: str, *, start_key: str | None = None, limit: int = 0,
                    revision: int = 0) -> RangeResult:
        res = await self.inner.range(prefix, start_key=start_key, limit=limit, revision=revision)
        return RangeResult([self._open(kv) for kv in res.kvs], res.revision, res.more, res.count)

    async def create(self, key: str, value: bytes) -> KeyValue:
        try:
            kv = await self.inner.create(key, self._for(key).encrypt(value, self._aad(key)))
        except KeyExists as exc:
            raise KeyExists(key, self._open_opt(exc.current)) from None
        return KeyValue(kv.key, value, kv.create_revision, kv.mod_revision)

    async def update(self, key: str, value: bytes, expected_mod_revision: int) -> KeyValue:
        try:
            kv = await self.inner.update(key, self._for(key).encrypt(value, self._aad(key)), expected_mod_revision)
        except RevisionMismatch as exc:
            raise RevisionMismatch(key, exc.expected, self._open_opt(exc.current)) from None
        return KeyValue(kv.key, value, kv.create_revision, kv.mod_revision)

    async def delete(self, key: str, expected_mod_revision: int = 0) -> tuple[KeyValue, int]:
        try:
            prev, rev = await self.inner.delete(key, expected_mod_revision)
        except RevisionMismatch as exc:
            raise RevisionMismatch(key, exc.expected, self._open_opt(exc.current)) from None
        return self._open(prev), rev

    def watch(self, prefix: str, after_revision: int) -> AsyncIterator[list[Event]]:
        events = self.inner.watch(prefix, after_revision)
        if isinstance(events, WatchFeed):
            return MappedFeed(events, self._event)
        return self._watch_batches(events)

    async def _watch_batches(self, events: AsyncIterator[list[Event]]) -> AsyncIterator[list[Event]]:
        try:
            async for batch in events:
                yield [self._event(ev) for ev in batch]
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

