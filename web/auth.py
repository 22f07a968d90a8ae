"""Users, roles and tokens for the web app and API.

A token is 32 random bytes shown once at creation; the database keeps only its SHA-256
(a slow password hash buys nothing for a secret with 256 bits of entropy). Roles are
ordered: a viewer reads, an analyst also triages, an admin also manages users.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from index.store import ApiToken, Store

ROLES = ("viewer", "analyst", "admin")
# "Last used" is kept to the minute: writing it on every request made each API read a database
# write, and 50 concurrent clients queued on SQLite's single writer.
LAST_USED_RESOLUTION = timedelta(minutes=1)
TOKEN_PREFIX = "lw_"
# The JSON API remembers whose a token is for this long (web.app.api_reader): a lookup per request
# sent every search through a worker thread, and the thread hops, not the work, made the slowest
# searches slow under load. A removed token therefore keeps working for up to this long in a
# running server.
TOKEN_CACHE_SECONDS = 2.0


class UserError(ValueError):
    """A user that cannot be added or removed; the message says why."""


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    token_hash: str = ""

    def can(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


ANONYMOUS = Principal("anonymous", "viewer")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def add_user(store: Store, name: str, role: str) -> str:
    """Create the user and return their token: the only time it is ever visible."""
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not name.strip() or len(name) > 64:
        raise UserError("name must be 1 to 64 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with store.session() as session:
        if session.scalar(select(ApiToken).where(ApiToken.name == name)) is not None:
            raise UserError(f"user {name!r} exists; remove it first to issue a new token")
        session.add(ApiToken(name=name, role=role, token_hash=hash_token(token)))
    return token


def remove_user(store: Store, name: str) -> None:
    with store.session() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.name == name))
        if row is None:
            raise UserError(f"no user {name!r}")
        session.delete(row)


def list_users(store: Store) -> list[ApiToken]:
    with store.session() as session:
        return list(session.scalars(select(ApiToken).order_by(ApiToken.name)))


def authenticate(store: Store, token: str | None) -> Principal | None:
    """The token's owner, or None; looked up by hash, so timing reveals nothing of the secret."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    digest = hash_token(token)
    with store.session() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
        if row is None:
            return None
        now = datetime.now(UTC)
        last = row.last_used_at
        if last is None or now - (last if last.tzinfo else last.replace(tzinfo=UTC)) >= LAST_USED_RESOLUTION:
            row.last_used_at = now
        return Principal(row.name, row.role, digest)


class TokenCache:
    """Who recently presented tokens were (or that they were nobody), by the token's hash, for a
    few seconds; see TOKEN_CACHE_SECONDS."""

    def __init__(self, seconds: float = TOKEN_CACHE_SECONDS, size: int = 4096) -> None:
        self.seconds = seconds
        self.size = size
        self._seen: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def lookup(self, token: str | None) -> tuple[bool, Principal | None]:
        """(known, principal): known is False when the token must be looked up in the store."""
        with self._lock:
            seen = self._seen.get(hash_token(token or ""))
        if seen is None or time.monotonic() - seen[0] > self.seconds:
            return False, None
        return True, seen[1]

    def remember(self, token: str | None, principal: Principal | None) -> None:
        with self._lock:
            if len(self._seen) >= self.size:
                self._seen.clear()
            self._seen[hash_token(token or "")] = (time.monotonic(), principal)


def csrf_token(principal: Principal, secret: bytes) -> str:
    """A per-user form token: a cross-site page can neither read the cookie nor compute this."""
    return hmac.new(secret, principal.token_hash.encode("ascii"), hashlib.sha256).hexdigest()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
