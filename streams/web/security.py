"""Who is asking: session cookies, the trusted SSO proxy, CSRF tokens, response headers.

- A signed-in browser carries ``cw_session`` (a random token; HttpOnly, SameSite=Lax,
  Secure when served over TLS). Its session row holds the CSRF token that every form
  must send back.
- The sign-in form itself is protected by a double-submit token (``cw_pre`` cookie and
  a hidden field), since there is no session yet.
- With ``trusted_proxies`` set, a request *from one of those addresses* carrying the
  user header signs in the named (existing, active) account; the header from any other
  address is ignored. Off by default.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import TypeVar
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from streams.store import Store, User

R = TypeVar("R", bound=Response)

__all__ = ["SESSION_COOKIE", "Visitor", "WebSettings", "identify", "same_token"]

SESSION_COOKIE = "cw_session"
PRE_COOKIE = "cw_pre"


@dataclass(frozen=True)
class WebSettings:
    """The web app's settings (``carewatch serve`` flags)."""

    zone: ZoneInfo
    secure_cookies: bool = False
    trusted_proxies: frozenset[str] = frozenset()
    proxy_user_header: str = "X-Remote-User"
    refresh_seconds: int = 60


@dataclass(frozen=True)
class Visitor:
    """A signed-in user, the CSRF token of their session, and a new session token to
    set as a cookie (when the trusted proxy just signed them in)."""

    user: User
    csrf: str
    new_token: str = ""


def same_token(a: str | None, b: str | None) -> bool:
    """Constant-time comparison of two tokens; False when either is missing."""
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


async def identify(request: Request, store: Store, settings: WebSettings) -> Visitor | None:
    """The signed-in visitor of ``request``, or None."""
    token = request.cookies.get(SESSION_COOKIE, "")
    found = await run_in_threadpool(store.session, token) if token else None
    client = request.client.host if request.client else ""
    if settings.trusted_proxies and client in settings.trusted_proxies:
        name = request.headers.get(settings.proxy_user_header, "").strip()
        if name:
            if found is not None and found[0].name == name:
                return Visitor(found[0], found[1])
            user = await run_in_threadpool(store.user, name)
            if user is None:
                return None
            new = await run_in_threadpool(store.start_session, name)
            again = await run_in_threadpool(store.session, new)
            return Visitor(user, again[1], new) if again else None
    if found is None:
        return None
    return Visitor(found[0], found[1])


def set_session_cookie(response: Response, token: str, settings: WebSettings) -> None:
    """The session cookie: HttpOnly, SameSite=Lax, Secure over TLS, for this browser
    session only."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
        path="/",
    )


def pre_token(request: Request) -> str:
    """The sign-in form's double-submit token (the cookie's, or a new one)."""
    return request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)


def set_pre_cookie(response: Response, token: str, settings: WebSettings) -> None:
    """The sign-in form's cookie half."""
    response.set_cookie(
        PRE_COOKIE, token, httponly=True, samesite="strict", secure=settings.secure_cookies
    )


def harden(response: R) -> R:
    """Headers every page gets: no caching of patient data, no framing, scripts and
    styles from this server only, no referrer (a search URL may hold an id)."""
    h = response.headers
    h["Cache-Control"] = "no-store"
    h["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    h["X-Content-Type-Options"] = "nosniff"
    h["X-Frame-Options"] = "DENY"
    h["Referrer-Policy"] = "no-referrer"
    return response
