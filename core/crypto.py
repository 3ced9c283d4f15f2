"""Key derivation, keyed digests, encryption at rest and password hashing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import lru_cache

import bcrypt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_hasher = PasswordHasher()  # argon2id with the library's RFC 9106 low-memory profile
# Verified against unknown emails so a miss costs the same time as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def derive_key(master: str, purpose: str, length: int = 32) -> bytes:
    """Derive an independent sub-key for one purpose from the master secret (HKDF-SHA256)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose.encode())
    return hkdf.derive(master.encode())


class Crypto:
    """Keyed operations bound to the configured master secret."""

    def __init__(self, master_secret: str) -> None:
        self.jwt_key = derive_key(master_secret, "vortex/jwt")
        self._pepper = derive_key(master_secret, "vortex/digest")
        self._fernet = Fernet(base64.urlsafe_b64encode(derive_key(master_secret, "vortex/enc")))

    def digest(self, *parts: str) -> str:
        """Keyed HMAC-SHA256 of the parts: safe to store or pass through workflow histories."""
        message = "\x1f".join(parts).encode()
        return hmac.new(self._pepper, message, hashlib.sha256).hexdigest()

    def encrypt(self, plaintext: str) -> str:
        """Authenticated encryption for secrets at rest (Fernet: AES-128-CBC + HMAC)."""
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        """Decrypt a value written by `encrypt`; raises ValueError if tampered."""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("ciphertext rejected") from exc


@lru_cache(maxsize=4)
def crypto_for(master_secret: str) -> Crypto:
    """Cached Crypto per master secret (key derivation is not free)."""
    return Crypto(master_secret)


def hash_password(password: str) -> str:
    """Hash a password with argon2id."""
    return _hasher.hash(password)


LEGACY_HASH_PREFIXES = ("$2a$", "$2b$", "$2y$")  # bcrypt, as the legacy monolith stored them


def is_legacy_password_hash(password_hash: str) -> bool:
    """A bcrypt hash brought over by the migration (rehashed to argon2id at the next login)."""
    return password_hash.startswith(LEGACY_HASH_PREFIXES)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password in constant-ish time, also when the account does not exist; a migrated
    user's bcrypt hash is checked with bcrypt (bcrypt reads at most 72 bytes: longer passwords
    are refused rather than truncated, the monolith never accepted them)."""
    if password_hash is not None and is_legacy_password_hash(password_hash):
        encoded = password.encode()
        try:
            return len(encoded) <= 72 and bcrypt.checkpw(encoded, password_hash.encode())
        except ValueError:
            return False
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def constant_time_equal(a: str, b: str) -> bool:
    """Compare two digests without leaking timing."""
    return hmac.compare_digest(a.encode(), b.encode())
