"""The worklist web app: plain server-rendered pages over a ``Store`` (Starlette + Jinja2).

Pages: ``/`` the worklist, ``/failures/{id}`` one failure (its actions are forms posting
to ``/failures/{id}/act``), ``/feedback`` precision per detector, ``/audit`` and
``/audit.csv`` for admins, ``/signin`` and ``/signout``. Every page needs a signed-in
visitor (``streams.web.security``); every form carries the session's CSRF token; every
action and every opening of a failure's page is an audit row.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from detectors.errors import ConfigError
from streams.store import RESOLUTIONS, ROLES, Conflict, Forbidden, Store, WorklistQuery
from streams.store.store import ACTION_KINDS, AUTO_RESOLUTIONS
from streams.web.present import ACTION_WORDS, STATUS_WORDS, Presenter
from streams.web.security import (
    PRE_COOKIE,
    SESSION_COOKIE,
    Visitor,
    WebSettings,
    harden,
    identify,
    pre_token,
    same_token,
    set_pre_cookie,
    set_session_cookie,
)

__all__ = ["WebSettings", "build_app"]

HERE = Path(__file__).parent
log = logging.getLogger("carewatch.web")
Handler = Callable[[Request, Visitor], Awaitable[Response]]


def build_app(store: Store, settings: WebSettings) -> ASGIApp:
    """The ASGI app serving ``store``."""
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    show = Presenter(settings.zone)
    env.globals.update(
        show=show,
        STATUS_WORDS=STATUS_WORDS,
        ACTION_WORDS=ACTION_WORDS,
        RESOLUTIONS={**RESOLUTIONS, **AUTO_RESOLUTIONS},
        PERSON_RESOLUTIONS=RESOLUTIONS,
        refresh=settings.refresh_seconds,
    )

    options_cache = _Cached(store.options, seconds=60.0)

    def page(template: str, status: int = 200, **context: Any) -> Response:
        html = env.get_template(template).render(**context)
        return harden(HTMLResponse(html, status_code=status))

    def signed_in(
        handler: Handler, role: str = "viewer"
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            visitor = await identify(request, store, settings)
            if visitor is None:
                if request.method != "GET":
                    return harden(Response("sign in first", status_code=403))
                target = request.url.path
                return harden(RedirectResponse(f"/signin?{urlencode({'next': target})}", 303))
            if not visitor.user.may(role):
                await refused(request, visitor, f"needs the {role} role")
                return page(
                    "error.html", 403, me=visitor, message=f"This page needs the {role} role."
                )
            if request.method == "POST":
                form = await request.form()
                if not same_token(str(form.get("csrf", "")), visitor.csrf):
                    await refused(request, visitor, "the form did not carry this session's token")
                    return page(
                        "error.html",
                        403,
                        me=visitor,
                        message="The form was refused: it did not carry this session's token. Reload the page and try again.",
                    )
            response = await handler(request, visitor)
            if visitor.new_token:
                set_session_cookie(response, visitor.new_token, settings)
            return response

        return endpoint

    async def refused(
        request: Request, visitor: Visitor, why: str, kind: str | None = None
    ) -> None:
        """An audit row for an attempt that was refused (who, which failure, what, why):
        a refused action is as much a part of the trail as one that was done."""
        if kind is None and request.method == "POST":
            kind = str((await request.form()).get("kind", "")) or None
        what = kind if kind in ACTION_KINDS else request.url.path.rsplit("/", 1)[-1] or "page"
        fid = request.path_params.get("failure_id")
        await run_in_threadpool(store.audit, visitor.user.name, f"{what}-refused", fid, why)

    # --- sign-in --------------------------------------------------------------------------

    async def signin_form(request: Request) -> Response:
        token = pre_token(request)
        response = page("signin.html", pre=token, next=_safe_next(request.query_params.get("next")))
        set_pre_cookie(response, token, settings)
        return response

    async def signin(request: Request) -> Response:
        form = await request.form()
        token = pre_token(request)
        nxt = _safe_next(str(form.get("next", "")))
        if not same_token(str(form.get("csrf", "")), request.cookies.get(PRE_COOKIE)):
            return page(
                "signin.html", 403, pre=token, next=nxt, message="The form had expired; try again."
            )
        name = str(form.get("name", "")).strip()
        password = str(form.get("password", ""))
        session, wait = await run_in_threadpool(store.sign_in, name, password)
        if not session:
            if wait > 0:
                message = f"Too many failed sign-ins for this account: wait {int(wait) + 1} s and try again."
                return page("signin.html", 429, pre=token, next=nxt, message=message, name=name)
            return page(
                "signin.html",
                401,
                pre=token,
                next=nxt,
                message="Wrong name or password.",
                name=name,
            )
        response = harden(RedirectResponse(nxt, 303))
        set_session_cookie(response, session, settings)
        response.delete_cookie(PRE_COOKIE)
        return response

    async def signout(request: Request, me: Visitor) -> Response:
        await run_in_threadpool(
            store.end_session, request.cookies.get(SESSION_COOKIE, ""), me.user.name
        )
        response = harden(RedirectResponse("/signin", 303))
        response.delete_cookie(SESSION_COOKIE)
        return response

    # --- the worklist ---------------------------------------------------------------------

    async def worklist(request: Request, me: Visitor) -> Response:
        p = request.query_params
        q = WorklistQuery(
            detector=p.get("detector") or None,
            site=p.get("site") or None,
            specialty=p.get("specialty") or None,
            clinic=p.get("clinic") or None,
            status=p.get("status") or None,
            assignee=me.user.name if p.get("mine") else (p.get("assignee") or None),
            q=(p.get("q") or "").strip() or None,
            state=_state(p.get("state")),
            page=_int(p.get("page"), 1),
            per_page=min(200, _int(p.get("per_page"), 50)),
        )
        result = await run_in_threadpool(store.worklist, q)
        options = await options_cache.get()
        if q.q:
            await run_in_threadpool(
                store.audit, me.user.name, "search", None, f"{result.total} found"
            )
        keep = {k: v for k, v in p.items() if k != "page" and v}
        return page(
            "worklist.html",
            me=me,
            result=result,
            options=options,
            params=keep,
            mine=bool(p.get("mine")),
            now=store.clock(),
            link=lambda **more: "/?" + urlencode({**keep, **{k: v for k, v in more.items() if v}}),
        )

    async def failure(
        request: Request,
        me: Visitor,
        conflict: str = "",
        kept: dict[str, str] | None = None,
        status: int = 200,
    ) -> Response:
        fid = request.path_params["failure_id"]
        found = await run_in_threadpool(store.failure, fid)
        if found is None:
            return page("error.html", 404, me=me, message="No such failure.")
        await run_in_threadpool(store.audit, me.user.name, "view", fid, None)
        users = [
            u.name
            for u in await run_in_threadpool(store.users)
            if u.active and u.may("coordinator")
        ]
        return page(
            "failure.html",
            status,
            me=me,
            f=found,
            users=users,
            now=store.clock(),
            conflict=conflict,
            kept=kept or {},
        )

    async def act(request: Request, me: Visitor) -> Response:
        fid = request.path_params["failure_id"]
        form = await request.form()
        kept = {k: str(v) for k, v in form.items() if k in ("note", "reason", "assignee", "kind")}
        try:
            await run_in_threadpool(
                store.act,
                me.user,
                fid,
                str(form.get("kind", "")),
                _int(str(form.get("version", "")), -1),
                assignee=str(form.get("assignee", "")) or None,
                reason=str(form.get("reason", "")) or None,
                note=str(form.get("note", "")) or None,
            )
        except Conflict as exc:
            when = show.time(exc.at) if exc.at else "just now"
            await refused(request, me, f"conflict: changed by {exc.by or 'someone'} meanwhile")
            message = f"Not saved: this failure was changed by {exc.by or 'someone'} at {when}. Read the change below; your entry is kept in the form."
            return await failure(request, me, conflict=message, kept=kept, status=409)
        except Forbidden as exc:
            await refused(request, me, f"forbidden: {me.user.role}")
            return page("error.html", 403, me=me, message=str(exc))
        except ConfigError as exc:
            await refused(request, me, f"not possible: {exc}")
            return await failure(request, me, conflict=f"Not saved: {exc}.", kept=kept, status=400)
        return harden(RedirectResponse(f"/failures/{fid}", 303))

    async def feedback(request: Request, me: Visitor) -> Response:
        rows = await run_in_threadpool(store.feedback)
        return page("feedback.html", me=me, rows=rows)

    async def audit(request: Request, me: Visitor) -> Response:
        fid = request.query_params.get("failure") or None
        rows = await run_in_threadpool(lambda: list(store.audit_rows(failure_id=fid, limit=500)))
        await run_in_threadpool(store.audit, me.user.name, "audit-read", fid, None)
        return page("audit.html", me=me, rows=rows, failure=fid)

    async def audit_csv(request: Request, me: Visitor) -> Response:
        await run_in_threadpool(store.audit, me.user.name, "audit-export", None, None)
        rows = await run_in_threadpool(lambda: list(store.audit_rows(limit=None)))
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["id", "at", "actor", "action", "failure_id", "detail"])
        for r in reversed(rows):
            w.writerow(
                [
                    r["id"],
                    show.iso(r["at"]),
                    r["actor"],
                    r["action"],
                    r["failure_id"] or "",
                    r["detail"] or "",
                ]
            )
        response = harden(Response(out.getvalue(), media_type="text/csv"))
        response.headers["Content-Disposition"] = 'attachment; filename="carewatch-audit.csv"'
        return response

    async def users_page(
        request: Request, me: Visitor, message: str = "", status: int = 200
    ) -> Response:
        users = await run_in_threadpool(store.users)
        return page("users.html", status, me=me, users=users, message=message, roles=ROLES)

    async def users_change(request: Request, me: Visitor) -> Response:
        form = await request.form()
        name = str(form.get("name", "")).strip()
        try:
            if form.get("do") == "disable":
                if name == me.user.name:
                    raise ConfigError("you cannot disable your own account")
                if not await run_in_threadpool(store.disable_user, name, me.user.name):
                    raise ConfigError(f"no account called {name!r}")
                done = f"{name} disabled"
            else:
                role = str(form.get("role", ""))
                password = str(form.get("password", "")) or None
                await run_in_threadpool(store.add_user, name, role, password, me.user.name)
                done = f"{name}: {role}"
        except ConfigError as exc:
            return await users_page(request, me, message=f"Not saved: {exc}.", status=400)
        return await users_page(request, me, message=f"Saved: {done}.")

    routes = [
        Route("/signin", signin_form, methods=["GET"]),
        Route("/signin", signin, methods=["POST"]),
        Route("/signout", signed_in(signout), methods=["POST"]),
        Route("/", signed_in(worklist), methods=["GET"]),
        Route("/failures/{failure_id}", signed_in(failure), methods=["GET"]),
        Route("/failures/{failure_id}/act", signed_in(act), methods=["POST"]),
        Route("/feedback", signed_in(feedback), methods=["GET"]),
        Route("/audit", signed_in(audit, "admin"), methods=["GET"]),
        Route("/audit.csv", signed_in(audit_csv, "admin"), methods=["GET"]),
        Route("/users", signed_in(users_page, "admin"), methods=["GET"]),
        Route("/users", signed_in(users_change, "admin"), methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes)

    return AccessLog(app)


class _Cached:
    """The last answer of ``fetch`` for ``seconds``: the filter choices scan the whole
    table, and a new site or clinic may take a minute to appear in them."""

    def __init__(self, fetch: Callable[[], Any], seconds: float) -> None:
        self.fetch = fetch
        self.seconds = seconds
        self.value: Any = None
        self.at = -float("inf")

    async def get(self) -> Any:
        if time.monotonic() - self.at > self.seconds:
            self.value = await run_in_threadpool(self.fetch)
            self.at = time.monotonic()
        return self.value


class AccessLog:
    """One log line per request: method, path (never the query string: a search may hold
    a patient id), status and milliseconds."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [0]

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            log.info(
                "%s %s %d %.0f ms",
                scope["method"],
                scope["path"],
                status[0],
                (time.perf_counter() - started) * 1000,
            )


def _state(text: str | None) -> str:
    return text if text in ("open", "resolved", "all") else "open"


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


def _safe_next(target: str | None) -> str:
    """Only a path of this site (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
