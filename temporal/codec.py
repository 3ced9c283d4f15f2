"""AES-256-GCM payload codec: histories hold ciphertext, keys are derived from the master secret.

An encrypted payload carries `encoding: binary/encrypted` and `encryption-key-id: <id>` in its
metadata and `nonce || ciphertext` as data; the plaintext is the original payload (metadata and
data) serialized. The key id is bound to the ciphertext as associated data, so a payload cannot
be relabelled to another key. Payloads without the marker (histories written before encryption)
pass through decoding untouched.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from core.crypto import derive_key
from core.settings import Settings

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NONCE_BYTES = 12  # 96-bit nonces, fresh from os.urandom for every payload
_AAD_PREFIX = b"vortex/payload/v1|"
_KEY_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_MIN_SECRET = 32


class PayloadDecryptionError(Exception):
    """A payload that this process cannot decrypt. Deliberately not an ApplicationError: the
    SDK fails the workflow task (retried, visible in the UI) instead of the workflow."""


class UnknownPayloadKey(PayloadDecryptionError):
    """The payload names a key id this process does not hold."""


class PayloadKeyConfigError(ValueError):
    """The payload key settings are malformed."""


def payload_key(master_secret: str, key_id: str) -> bytes:
    """The 256-bit payload key for `key_id` under a master secret (HKDF-SHA256)."""
    return derive_key(master_secret, f"vortex/payload/{key_id}")


@dataclass(frozen=True)
class PayloadKeys:
    """The active key (encrypts) and every key still accepted for decryption, by id."""

    active_id: str
    keys: Mapping[str, bytes]

    def __post_init__(self) -> None:
        if self.active_id not in self.keys:
            raise PayloadKeyConfigError("the active payload key id has no key")
        for key_id, key in self.keys.items():
            _check_key_id(key_id)
            if len(key) != 32:
                raise PayloadKeyConfigError(f"payload key {key_id!r} is not 256 bits")

    @classmethod
    def from_settings(cls, settings: Settings) -> PayloadKeys:
        """Keys from `payload_key_id` (under `secret_key`) and `payload_old_keys`."""
        master = settings.secret_key.get_secret_value()
        return cls.parse(
            master, settings.payload_key_id, settings.payload_old_keys.get_secret_value()
        )

    @classmethod
    def parse(cls, master_secret: str, active_id: str, old_keys: str) -> PayloadKeys:
        """Build the keyring; `old_keys` is comma-separated `id` (derived from the current
        master secret) or `id=old master secret` entries, decode-only."""
        _check_key_id(active_id)
        keys = {active_id: payload_key(master_secret, active_id)}
        for entry in filter(None, (part.strip() for part in old_keys.split(","))):
            key_id, sep, secret = entry.partition("=")
            key_id = key_id.strip()
            _check_key_id(key_id)
            if key_id in keys:
                raise PayloadKeyConfigError(f"payload key id {key_id!r} is listed twice")
            if sep and len(secret) < _MIN_SECRET:  # never echo the secret itself
                raise PayloadKeyConfigError(f"old secret of payload key {key_id!r} is too short")
            keys[key_id] = payload_key(secret if sep else master_secret, key_id)
        return cls(active_id, keys)


def _check_key_id(key_id: str) -> None:
    if not key_id or len(key_id) > 32 or not set(key_id) <= _KEY_ID_CHARS:
        raise PayloadKeyConfigError(
            f"payload key id {key_id[:40]!r} must be 1-32 of [A-Za-z0-9._-]"
        )


def is_encrypted(payload: Payload) -> bool:
    """Whether a payload was written by this codec."""
    return payload.metadata.get("encoding") == ENCODING


class EncryptionCodec(PayloadCodec):
    """Encrypts every payload under the active key (unless `encrypt` is off) and decrypts
    payloads under any known key; clear payloads decode as they are."""

    def __init__(self, keys: PayloadKeys, *, encrypt: bool = True) -> None:
        self._active_id = keys.active_id
        self._active_id_bytes = keys.active_id.encode()
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.keys.items()}
        self._encrypt = encrypt

    @property
    def active_key_id(self) -> str:
        """The key id new payloads are encrypted under."""
        return self._active_id

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Encrypt each payload (a no-op when encryption is off)."""
        if not self._encrypt:
            return list(payloads)
        return [self.encrypt_one(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Decrypt encrypted payloads; others pass through (histories from before)."""
        return [self.decrypt_one(p) if is_encrypted(p) else p for p in payloads]

    def encrypt_one(self, payload: Payload) -> Payload:
        """One payload under the active key."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._active_id].encrypt(
            nonce, payload.SerializeToString(), _AAD_PREFIX + self._active_id_bytes
        )
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: self._active_id_bytes},
            data=nonce + sealed,
        )

    def decrypt_one(self, payload: Payload) -> Payload:
        """One encrypted payload; a clear error when its key is unknown or it was altered."""
        raw_id = payload.metadata.get(KEY_ID_METADATA, b"")
        key_id = raw_id.decode("utf-8", "replace")[:40]
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownPayloadKey(
                f"payload encrypted under key id {key_id!r}, which this process does not hold "
                f"(known: {', '.join(sorted(self._ciphers))}); add it to VORTEX_PAYLOAD_OLD_KEYS"
            )
        data = payload.data
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], _AAD_PREFIX + raw_id)
        except InvalidTag:
            raise PayloadDecryptionError(
                f"payload under key id {key_id!r} failed authentication (altered, or the key "
                "was derived from another secret)"
            ) from None
        return Payload.FromString(plain)


def codec_for(settings: Settings) -> EncryptionCodec:
    """The codec the settings describe (decrypting even when encryption of new payloads is
    off, so turning it off never strands running encrypted workflows)."""
    return EncryptionCodec(PayloadKeys.from_settings(settings), encrypt=settings.payload_encryption)


def key_ids(payloads: Iterable[Payload]) -> set[str]:
    """The key ids a set of payloads was encrypted under (for ops and tests)."""
    return {p.metadata[KEY_ID_METADATA].decode() for p in payloads if is_encrypted(p)}
