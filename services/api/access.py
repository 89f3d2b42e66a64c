"""Who may do what: bearer tokens for the API, signed session cookies and CSRF tokens for the console."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Literal

import orjson

from shared.errors import ConfigurationError
from shared.settings import Settings

Role = Literal["read", "operator"]
SESSION_COOKIE = "newsflow_console"
SESSION_TTL_S = 12 * 3600
# Before a session exists, the login form's CSRF token is bound to a nonce in a cookie of its own.
LOGIN_COOKIE = "newsflow_console_login"
LOGIN_TTL_S = 3600


@dataclass(frozen=True, slots=True)
class Access:
    """The tokens this API accepts, and the key its console signs sessions with."""

    read_token: str
    operator_token: str
    open: bool  # dev mode without tokens: everyone is an operator
    key: bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> Access:
        """Refuse to serve without a read token unless in dev mode."""
        read = settings.read_token.get_secret_value() if settings.read_token else ""
        operator = settings.operator_token.get_secret_value() if settings.operator_token else ""
        if not read and not operator and not settings.dev_mode:
            raise ConfigurationError(
                "the read API needs NEWSFLOW_READ_TOKEN (and NEWSFLOW_OPERATOR_TOKEN for the console's DLQ actions); "
                "set them, or NEWSFLOW_DEV_MODE=true for a development setup",
                event="api.refused",
            )
        if read and read == operator:
            raise ConfigurationError(
                "NEWSFLOW_READ_TOKEN and NEWSFLOW_OPERATOR_TOKEN must differ: readers must not be operators",
                event="api.refused",
            )
        # The signing key follows from the tokens: every replica agrees, and changing a token ends every session.
        key = (
            hashlib.sha256(b"newsflow-console\0" + read.encode() + b"\0" + operator.encode()).digest()
            if read or operator
            else secrets.token_bytes(32)
        )
        return cls(read_token=read, operator_token=operator, open=not read and not operator, key=key)

    def role_of_token(self, token: str) -> Role | None:
        """The role a presented token grants (constant-time comparisons), or None."""
        if self.open:
            return "operator"
        given = token.encode()
        if self.operator_token and hmac.compare_digest(given, self.operator_token.encode()):
            return "operator"
        if self.read_token and hmac.compare_digest(given, self.read_token.encode()):
            return "read"
        return None

    def issue_session(self, role: Role, now: float | None = None) -> str:
        """A signed cookie value: role, expiry and a nonce the CSRF token is bound to."""
        body = orjson.dumps({"r": role, "e": int((now or time.time()) + SESSION_TTL_S), "n": secrets.token_hex(16)})
        payload = base64.urlsafe_b64encode(body).decode().rstrip("=")
        return f"{payload}.{self._sign(payload)}"

    def read_session(self, value: str | None, now: float | None = None) -> tuple[Role, str] | None:
        """(role, nonce) of a valid, unexpired session cookie; None otherwise."""
        if not value or "." not in value:
            return None
        payload, _, signature = value.rpartition(".")
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            data = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            role, expires, nonce = data["r"], int(data["e"]), str(data["n"])
        except (ValueError, KeyError, TypeError):
            return None
        if role not in ("read", "operator") or expires < (now or time.time()):
            return None
        return role, nonce

    def csrf_token(self, nonce: str) -> str:
        """The token every console form carries: bound to the session, unguessable without the key."""
        return self._sign("csrf:" + nonce)

    def check_csrf(self, nonce: str, token: str) -> bool:
        """Whether a submitted form's token belongs to this session."""
        return hmac.compare_digest(token.encode(), self.csrf_token(nonce).encode())

    def login_csrf_token(self, nonce: str) -> str:
        """The login form's token, bound to the login nonce cookie (a signed-in session has its own, above)."""
        return self._sign("login-csrf:" + nonce)

    def check_login_csrf(self, nonce: str | None, token: str) -> bool:
        """Whether a submitted login form came from a login page this browser was given."""
        return bool(nonce) and hmac.compare_digest(token.encode(), self.login_csrf_token(nonce or "").encode())

    def _sign(self, text: str) -> str:
        return base64.urlsafe_b64encode(hmac.new(self.key, text.encode(), hashlib.sha256).digest()).decode().rstrip("=")
