"""Response headers on every answer, and errors as pages or RFC 9457 problems.

Nothing from a package is trusted: templates escape it, and the Content-Security-Policy
allows scripts and styles from this site only (no inline script), so even a mistake in
escaping cannot run code. The diffoscope report, which is HTML made from package
contents, is served with its own policy that forbids every script and is only ever
shown in a sandboxed frame of this site.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rebuilder.store.page_cursors import BadCursorError
from reports.deps import templates

logger = logging.getLogger(__name__)

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
# The diffoscope report: its own inline styles, no script at all, framed by us only.
REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'self'; sandbox"
)
# Set by routes that serve untrusted documents with a policy of their own.
OWN_CSP_HEADER = "content-security-policy"

COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}

PROBLEM_TYPE = "about:blank"


def install(app: FastAPI) -> None:
    """Add the header middleware and the error handlers to ``app``."""

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        try:
            if _has_nul(request):
                # No name, version or cursor holds one, and PostgreSQL text cannot.
                response = problem(request, 400, "the request contains a NUL character")
            else:
                response = await call_next(request)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a page with an id
            response = await _server_error(request, exc)
        if OWN_CSP_HEADER not in response.headers:
            response.headers["Content-Security-Policy"] = PAGE_CSP
            response.headers["X-Frame-Options"] = "DENY"
        for name, value in COMMON_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(BadCursorError, _bad_cursor)
    app.add_exception_handler(Exception, _server_error)


def _has_nul(request: Request) -> bool:
    if "\x00" in request.url.path:
        return True
    return any("\x00" in k or "\x00" in v for k, v in request.query_params.multi_items())


def wants_json(request: Request) -> bool:
    """API paths answer JSON problems; pages answer HTML unless JSON is asked for."""
    if request.url.path.startswith("/api/"):
        return True
    accept = request.headers.get("accept", "")
    return "json" in accept and "html" not in accept


def problem(
    request: Request,
    status: int,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    """An error answer: RFC 9457 ``application/problem+json`` or an HTML page."""
    title = HTTPStatus(status).phrase
    if wants_json(request):
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE,
            "title": title,
            "status": status,
            "detail": detail,
            "instance": request.url.path,
        }
        body.update(extra or {})
        return JSONResponse(
            body, status_code=status, headers=headers, media_type="application/problem+json"
        )
    return templates.TemplateResponse(
        request,
        "error.html",
        {"status": status, "title": title, "detail": detail, "error_id": (extra or {}).get("id")},
        status_code=status,
        headers=headers,
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for this type
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == HTTPStatus.NOT_FOUND and detail == "Not Found":
        detail = "There is nothing at this address."
    return problem(request, exc.status_code, detail, headers=dict(exc.headers or {}))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this type
    errors = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
        for e in exc.errors()
    ]
    detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
    return problem(request, 422, detail or "invalid request", extra={"errors": errors})


async def _bad_cursor(request: Request, exc: Exception) -> Response:
    return problem(request, 400, f"bad pagination cursor: {exc}")


async def _server_error(request: Request, exc: Exception) -> Response:
    error_id = uuid.uuid4().hex[:12]
    logger.error("error %s on %s %s", error_id, request.method, request.url.path, exc_info=exc)
    return problem(
        request,
        500,
        f"Something went wrong on our side. Quote error id {error_id} to the operator.",
        extra={"id": error_id},
    )
