"""Who may call the org: connected apps, user passwords, access and refresh tokens."""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of two secrets of any characters (compare_digest refuses non-ASCII str)."""
    return secrets.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


@dataclass
class ConnectedApp:
    name: str
    client_id: str
    client_secret: str
    certificate_pem: bytes | None = None  # verifies JWT bearer assertions
    preauthorized: frozenset[str] | None = None  # usernames allowed the JWT flow; None = every user
    run_as: str | None = None  # username the client_credentials flow runs as; None = flow disabled


@dataclass
class Session:
    token: str
    user_id: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    client_id: str | None = None


@dataclass
class Identity:
    """Credentials and sessions. Tokens look like real ones: `<orgId15>!<random>`."""

    org_id: str
    clock: Callable[[], dt.datetime]
    session_seconds: int = 7200
    apps: dict[str, ConnectedApp] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)  # user id -> password
    security_tokens: dict[str, str] = field(default_factory=dict)  # user id -> token
    sessions: dict[str, Session] = field(default_factory=dict)
    refresh_tokens: dict[str, tuple[str, str]] = field(default_factory=dict)  # token -> (user id, client id)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check_password(self, user_id: str, given: str) -> bool:
        """Password alone (as from a trusted IP range) or password + security token."""
        expected = self.passwords.get(user_id)
        if expected is None:
            return False
        token = self.security_tokens.get(user_id, "")
        return same_secret(given, expected) or (bool(token) and same_secret(given, expected + token))

    def new_session(self, user_id: str, client_id: str | None = None) -> Session:
        now = self.clock()
        token = f"{self.org_id[:15]}!{secrets.token_urlsafe(72)}"
        session = Session(token, user_id, now, now + dt.timedelta(seconds=self.session_seconds), client_id)
        with self._lock:
            self.sessions[token] = session
        return session

    def new_refresh_token(self, user_id: str, client_id: str) -> str:
        token = "5Aep" + secrets.token_urlsafe(60)
        with self._lock:
            self.refresh_tokens[token] = (user_id, client_id)
        return token

    def authenticate(self, token: str) -> str | None:
        session = self.sessions.get(token)
        if session is None:
            return None
        if self.clock() >= session.expires_at:
            with self._lock:
                self.sessions.pop(token, None)
            return None
        return session.user_id

    def revoke(self, token: str) -> bool:
        with self._lock:
            if self.sessions.pop(token, None) is not None:
                return True
            if self.refresh_tokens.pop(token, None) is not None:
                # Revoking a refresh token also ends the sessions it could have produced.
                return True
        return False

    def expire_all(self) -> int:
        with self._lock:
            n = len(self.sessions)
            self.sessions.clear()
        return n
