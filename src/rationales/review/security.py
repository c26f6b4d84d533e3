"""Request checks of the review app, as one small ASGI middleware.

* **Host**: only the host names the server was started for (a DNS-rebinding page cannot
  reach a server on 127.0.0.1 through another name).
* **Token** (required when the server listens beyond loopback): ``?token=`` once (then an
  HttpOnly cookie), the cookie, or ``Authorization: Bearer``; checked on every request.
* **CSRF** (double-submit): every visitor gets a random HttpOnly, SameSite=Strict session
  cookie; pages embed its value, and every state-changing request (anything but
  GET/HEAD/OPTIONS) must send it back in ``X-CSRF-Token`` or a ``csrf`` form field, and may
  not come from another origin (``Origin`` / ``Sec-Fetch-Site``). Form bodies are read here
  and replayed to the app.
* **Headers**: a Content-Security-Policy that allows only the app's own scripts and styles
  (no inline script), ``nosniff``, no framing, no referrer to other sites (same-origin: with
  ``no-referrer`` browsers send ``Origin: null`` on form posts, which is refused).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

SESSION_COOKIE = "rv_session"
TOKEN_COOKIE = "rv_token"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
MAX_BODY = 1 << 20

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
           (b"x-frame-options", b"DENY"), (b"referrer-policy", b"same-origin"),
           (b"cache-control", b"no-store")]

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookies(headers: dict[str, str]) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # noqa: BLE001 - a malformed cookie header counts as no cookies
        return {}
    return {k: m.value for k, m in jar.items()}


def _eq(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and secrets.compare_digest(str(a).encode(), str(b).encode())


def _cookie(name: str, value: str) -> tuple[bytes, bytes]:
    return b"set-cookie", f"{name}={value}; Path=/; HttpOnly; SameSite=Strict".encode()


async def _plain(send: Callable, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                            *HEADERS]})
    await send({"type": "http.response.body", "body": body})


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, *, token: str | None = None, allowed_hosts: Iterable[str] | None = None):
        self.app = app
        self.token = token or None
        self.allowed_hosts = {h.lower() for h in allowed_hosts} if allowed_hosts is not None else None

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        host = headers.get("host", "")
        hostname = (host[1:].split("]")[0] if host.startswith("[") else host.split(":")[0]).lower()
        if self.allowed_hosts is not None and hostname not in self.allowed_hosts:
            await _plain(send, 400, f"Host {host!r} is not served here; open the URL that rationales review printed.")
            return
        cookies = _cookies(headers)
        extra: list[tuple[bytes, bytes]] = []
        if self.token is not None:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            auth = headers.get("authorization", "")
            given_q = (query.get("token") or [None])[0]
            if _eq(given_q, self.token):
                extra.append(_cookie(TOKEN_COOKIE, self.token))
            elif not (_eq(cookies.get(TOKEN_COOKIE), self.token)
                      or (auth.lower().startswith("bearer ") and _eq(auth[7:].strip(), self.token))):
                await _plain(send, 401, "This review server needs its token: open the URL with ?token=... that "
                                        "rationales review printed.")
                return
        session = cookies.get(SESSION_COOKIE)
        if not session or len(session) < 32:
            session = secrets.token_urlsafe(32)
            extra.append(_cookie(SESSION_COOKIE, session))
            fresh = True
        else:
            fresh = False
        scope.setdefault("state", {})["csrf"] = session

        if scope["method"] not in SAFE_METHODS:
            origin = headers.get("origin")
            site = headers.get("sec-fetch-site")
            if origin is not None and origin != "null" and origin.split("://", 1)[-1].lower() != host.lower():
                await _plain(send, 403, "Cross-origin request refused.")
                return
            if origin == "null" or (site is not None and site not in ("same-origin", "none")):
                await _plain(send, 403, "Cross-site request refused.")
                return
            body, receive = await _buffer(receive)
            if body is None:
                await _plain(send, 413, "Request body too large.")
                return
            given = headers.get(CSRF_HEADER)
            if given is None and headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                given = (parse_qs(body.decode("utf-8", "replace")).get(CSRF_FIELD) or [None])[0]
            if fresh or not _eq(given, session):
                await _plain(send, 403, "Missing or wrong CSRF token: reload the page and try again.")
                return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", []), *HEADERS, *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _buffer(receive: Callable) -> tuple[bytes | None, Callable]:
    """Read the whole request body (at most ``MAX_BODY``) and a ``receive`` that replays it."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None, receive
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay
