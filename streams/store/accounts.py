"""Local accounts: roles, password hashes, web sessions and the sign-in brake.

Passwords are hashed with scrypt (``hashlib.scrypt``, memory-hard, in the standard
library: no extra dependency to keep patched), N=2**14, r=8, p=1, a 16-byte random salt;
the parameters travel in the hash so they can be raised later. A session cookie holds a
random token; the store keeps only its SHA-256, so a copy of the database signs nobody in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from detectors.errors import ConfigError
from streams.store.db import Connection

__all__ = [
    "ROLES",
    "User",
    "hash_password",
    "sign_in_wait",
    "verify_password",
]

#: Roles, each allowed what the one before it may do and more.
ROLES: tuple[str, ...] = ("viewer", "coordinator", "admin")
#: Sign-in brake: from this many failures within the window on, wait before a new try.
BRAKE_AFTER = 3
BRAKE_WINDOW = 15 * 60.0  # seconds
BRAKE_MAX = 300.0  # seconds: the longest wait between tries
MIN_PASSWORD = 10  # characters


@dataclass(frozen=True)
class User:
    """A person who may sign in. ``role`` is one of ``ROLES``."""

    name: str
    role: str
    active: bool

    def may(self, role: str) -> bool:
        """True when this user has ``role`` or a higher one."""
        return self.active and ROLES.index(self.role) >= ROLES.index(role)


def hash_password(password: str, *, n: int = 2**14) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64) of ``password``."""
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"a password needs at least {MIN_PASSWORD} characters")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=8, p=1, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${n}$8$1${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str | None) -> bool:
    """True when ``password`` matches ``stored`` (constant time)."""
    if not stored:
        # same work as a real check, so a missing account does not answer faster
        hashlib.scrypt(password.encode(), salt=b"0" * 16, n=2**14, r=8, p=1, dklen=32)
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(base64.b64decode(digest)),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


def token_hash(token: str) -> str:
    """What the store keeps of a session token."""
    return hashlib.sha256(token.encode()).hexdigest()


def sign_in_wait(conn: Connection, name: str, now: float) -> float:
    """Seconds ``name`` must still wait before the next sign-in try (0 when none):
    after ``BRAKE_AFTER`` failures within ``BRAKE_WINDOW``, 1 s, then doubling with each
    further failure, up to ``BRAKE_MAX``, counted from the last failure."""
    row = conn.one(
        "SELECT COUNT(*), MAX(at) FROM sign_in_failures WHERE user_name = ? AND at > ?",
        (name, now - BRAKE_WINDOW),
    )
    count, last = int(row[0]), row[1]
    if count < BRAKE_AFTER or last is None:
        return 0.0
    wait = min(BRAKE_MAX, 2.0 ** (count - BRAKE_AFTER))
    return max(0.0, last + wait - now)
