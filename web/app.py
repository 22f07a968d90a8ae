"""The analysts' web app and JSON API (``loophole serve``): FastAPI, server-rendered Jinja2.

No JavaScript is served at all and the Content-Security-Policy forbids scripts, so even a
rendering mistake cannot run a scraped page's script; on top of that every scraped string
is rendered through autoescaping and links are emitted only for http(s) URLs.

Access: a token (``loophole users add``) in an ``Authorization: Bearer`` header (API) or in
an HttpOnly, SameSite=Strict cookie set by the login form (browser). Reading needs a
viewer; triage needs an analyst. Form posts from the browser must also carry the per-user
CSRF token and come from this origin (Sec-Fetch-Site / Origin).
"""

from __future__ import annotations

import secrets
import threading
import time
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import jinja2
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from alerts.saved import SavedSearchError, remove_search, save_search
from ground.config import MAX_ROW_ID, Settings
from ground.sources import load_sources
from index.feedback import record_feedback
from index.patterns import PatternLibrary, load_library
from index.restricted import active_version, screener_for
from index.screening import Screener
from index.search import SearchEngine, SearchFilters, SearchPage, engine_for
from index.store import SavedSearch, Store
from web import data
from web.auth import ANONYMOUS, Principal, TokenCache, authenticate, csrf_token, is_loopback

HERE = Path(__file__).resolve().parent
COOKIE = "lw_token"
REFRESH_SECONDS = 5.0
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def safe_href(url: Any) -> str:
    """The URL if it is http(s), else '' (no javascript:, data:, file: links from scraped pages)."""
    text = str(url or "").strip()
    return text if urlsplit(text).scheme.lower() in ("http", "https") else ""


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
    env.filters["safe_href"] = safe_href
    return env


class WebState:
    """Per-app resources; the search engine (the embedding model) loads on first use."""

    def __init__(self, settings: Settings, auth: bool) -> None:
        self.settings = settings
        self.auth = auth
        self.store = Store(settings.db_url)
        self.csrf_secret = secrets.token_bytes(32)
        self.tokens = TokenCache()
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()
        self._refreshed = time.monotonic()
        self._screener: Screener | None = None

    @cached_property
    def library(self) -> PatternLibrary:
        return load_library(self.settings.pattern_files)

    @cached_property
    def _engine(self) -> SearchEngine:
        return engine_for(self.settings, self.store)

    def engine(self) -> SearchEngine:
        """The engine, re-synced with what crawls added at most every few seconds. One request does
        the re-sync while the others go on with the engine as it is: under load, every request
        waiting on the one re-syncing made the slowest twentieth three times slower."""
        with self._lock:
            engine = self._engine
        if time.monotonic() - self._refreshed > REFRESH_SECONDS and self._refreshing.acquire(blocking=False):
            try:
                engine.refresh()
                self._refreshed = time.monotonic()
            finally:
                self._refreshing.release()
        return engine

    def ready_engine(self) -> SearchEngine | None:
        """The engine when it is loaded and needs no re-sync now, else None (no I/O: for the event loop)."""
        if "_engine" not in self.__dict__ or time.monotonic() - self._refreshed > REFRESH_SECONDS:
            return None
        return self._engine

    def screener(self) -> Screener | None:
        """The lists in force (reloaded after ``loophole lists update``), on the search engine's
        embedder; None while no list is loaded."""
        version = active_version(self.store)
        if version is None:
            return None
        with self._lock:
            if self._screener is None or self._screener.version != version:
                from index.embed import get_embedder

                embedder = get_embedder(self.settings.embedding.model, self.settings.embedding.batch_size)
                self._screener = screener_for(self.store, embedder, self.settings.screening)
            return self._screener


# A row id in a path: at most what the database can hold (a larger one is a 422, not a 500).
RowId = Annotated[int, PathParam(ge=1, le=MAX_ROW_ID)]


class Feedback(BaseModel):
    doc_id: int = Field(ge=1, le=MAX_ROW_ID)
    verdict: Literal["confirm", "dismiss"]
    pattern_id: str | None = Field(None, max_length=64)
    note: str = Field("", max_length=4000)


class LoginRequired(Exception):
    """A browser page without a valid token: send the user to the login form."""


def create_app(settings: Settings, auth: bool | None = None) -> FastAPI:
    """The app for one data directory. ``auth=False`` is refused unless the host is loopback."""
    auth = settings.web.auth if auth is None else auth
    if not auth and not is_loopback(settings.web.host):
        raise ValueError(f"auth can be off only on a loopback address, not {settings.web.host!r}")
    app = FastAPI(title="Loophole Watch", version="1", openapi_url="/api/openapi.json", docs_url=None,
                  redoc_url=None, description="Search, documents, alerts and feedback for trust-and-safety tools.")
    app.state.web = WebState(settings, auth)
    app.state.templates = Jinja2Templates(env=_environment())
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _install_handlers(app)
    from web import api, pages

    app.include_router(api.router)
    app.include_router(pages.router)
    return app


def _install_handlers(app: FastAPI) -> None:
    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, _exc: LoginRequired) -> Response:
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        return render(request, "error.html", {"status": exc.status_code, "detail": exc.detail},
                      status=exc.status_code)


def state(request: Request) -> WebState:
    return request.app.state.web


def _token(request: Request) -> tuple[str | None, bool]:
    """(token, from_cookie)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip(), False
    return request.cookies.get(COOKIE), True


def current_user(request: Request) -> Principal | None:
    token, _ = _token(request)
    return authenticate(state(request).store, token)


# Declares the scheme in the OpenAPI document (components.securitySchemes, and each API operation's
# security); the token itself is read by _token, from the header or the browser's cookie.
BEARER = HTTPBearer(auto_error=False, scheme_name="bearerAuth",
                    description="A token from `loophole users add NAME --role viewer|analyst|admin`.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]


def unauthorized(request: Request) -> HTTPException:
    """401, saying whether the token was missing or is not one we issued (RFC 6750's invalid_token)."""
    token, _ = _token(request)
    if token:
        return HTTPException(401, "the token is not valid: unknown, removed or mistyped",
                             headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return HTTPException(401, "a token is required (Authorization: Bearer ...)", headers={"WWW-Authenticate": "Bearer"})


def reader(request: Request, _credentials: Credentials) -> Principal:
    """Anyone with a token; with auth off (loopback only), anyone."""
    user = current_user(request)
    if user is not None:
        return user
    if not state(request).auth:
        return ANONYMOUS
    if request.url.path.startswith("/api/"):
        raise unauthorized(request)
    raise LoginRequired()


async def api_reader(request: Request, _credentials: Credentials) -> Principal:
    """reader() for the JSON API, on the event loop: the token's owner comes from a short-lived
    cache (web.auth.TOKEN_CACHE_SECONDS), and only a token not seen for a while is looked up in the
    store, in a worker thread."""
    token, _ = _token(request)
    web = state(request)
    known, user = web.tokens.lookup(token)
    if not known:
        user = await run_in_threadpool(authenticate, web.store, token)
        web.tokens.remember(token, user)
    if user is not None:
        return user
    if not web.auth:
        return ANONYMOUS
    raise unauthorized(request)


def analyst(request: Request, _credentials: Credentials) -> Principal:
    """A signed-in analyst or admin; browser (cookie) requests must also be same-origin."""
    user = current_user(request)
    if user is None:
        raise unauthorized(request)
    if not user.can("analyst"):
        raise HTTPException(403, "triage needs the analyst role")
    _, from_cookie = _token(request)
    if from_cookie:
        check_same_origin(request)
    return user


def check_same_origin(request: Request) -> None:
    """Reject cross-site form posts: the browser says where the request came from."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        if fetch_site not in ("same-origin", "none"):
            raise HTTPException(403, "cross-site request refused")
        return
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(403, "cross-site request refused")


def check_csrf(request: Request, user: Principal, submitted: str) -> None:
    if not secrets.compare_digest(submitted.encode(), csrf_token(user, state(request).csrf_secret).encode()):
        raise HTTPException(403, "stale or missing form token; reload the page")


Reader = Annotated[Principal, Depends(reader)]
ApiReader = Annotated[Principal, Depends(api_reader)]
Analyst = Annotated[Principal, Depends(analyst)]


def render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    user = current_user(request)
    web = state(request)
    base = {"user": user, "auth": web.auth, "csrf": csrf_token(user, web.csrf_secret) if user else "",
            "path": request.url.path}
    response: HTMLResponse = request.app.state.templates.TemplateResponse(
        request, template, {**base, **context}, status_code=status)
    return response


async def filters_from(source: str | None = None, kind: str | None = None, lang: str | None = None,
                       date_from: str | None = None, date_to: str | None = None, pattern: str | None = None,
                       entity: str | None = None, buyer: str | None = None,
                       amount_min: str | None = None, amount_max: str | None = None) -> SearchFilters:
    """Query parameters shared by the search page and /api/search; blanks (from a form) mean 'any'.
    Async only because it does no I/O: FastAPI then runs it on the event loop, not in a worker thread
    (each thread hop cost a search under load more than the work itself)."""
    return clean_filters(source=source, kind=kind, lang=lang, date_from=date_from, date_to=date_to, pattern=pattern,
                         entity=entity, buyer=buyer, amount_min=amount_min, amount_max=amount_max)


FILTER_FIELDS = ("source", "kind", "lang", "date_from", "date_to", "pattern", "entity", "buyer", "amount_min",
                 "amount_max")


def clean_filters(**values: str | None) -> SearchFilters:
    """Filters from text fields: trimmed, blanks dropped, dates and amounts checked (422 otherwise)."""
    amount_min, amount_max = values.pop("amount_min", None), values.pop("amount_max", None)
    cleaned = {key: (value or "").strip()[:200] or None for key, value in values.items()}
    for key in ("date_from", "date_to"):
        if cleaned.get(key) and not _is_date(cleaned[key]):
            raise HTTPException(422, f"{key} must be a date YYYY-MM-DD")
    return SearchFilters(**cleaned, amount_min=_number(amount_min, "amount_min"),
                         amount_max=_number(amount_max, "amount_max"))


def _is_date(value: str | None) -> bool:
    try:
        datetime.strptime(value or "", "%Y-%m-%d")
    except ValueError:
        return False
    return True


def _number(value: str | None, name: str) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        return float(value.replace(",", ""))
    except ValueError as exc:
        raise HTTPException(422, f"{name} must be a number") from exc


Filters = Annotated[SearchFilters, Depends(filters_from)]
View = Literal["evidence", "everything"]


def save(request: Request, user: Principal, name: str, query: str, filters: SearchFilters, view: str,
         subscription: str, top: int) -> SavedSearch:
    """Save a search for a user into a configured subscription's digest; bad input is a 422."""
    web = state(request)
    known = [sub.name for sub in web.settings.effective_subscriptions()]
    subscription = subscription or known[0]
    if subscription not in known:
        raise HTTPException(422, f"no subscription {subscription!r}; configured: {', '.join(known)}")
    try:
        return save_search(web.store, web.engine(), user.name, name, query, filters, view, subscription, top)
    except SavedSearchError as exc:
        raise HTTPException(422, str(exc)) from exc


def remove(request: Request, user: Principal, search_id: int) -> None:
    """Delete a saved search: one's own, or any as an admin."""
    try:
        remove_search(state(request).store, search_id, None if user.can("admin") else user.name)
    except SavedSearchError as exc:
        raise HTTPException(404, str(exc)) from exc


def more_like(request: Request, engine: SearchEngine, filters: SearchFilters, page: int, per_page: int, view: str,
              doc_id: int | None, alert_id: int | None) -> SearchPage:
    """Pages like a document, or like an alert's evidence (its document, pattern and decisive line)."""
    pattern, sentence = None, ""
    if alert_id is not None:
        alert = data.get_alert(state(request).store, alert_id)
        if alert is None:
            raise HTTPException(404, f"no alert {alert_id}")
        doc_id, pattern, sentence = alert.doc_id, alert.pattern_id, alert.sentence
    assert doc_id is not None
    if not data.document_exists(state(request).store, doc_id):
        raise HTTPException(404, f"no document {doc_id}")
    return engine.more_like(doc_id, filters, page, per_page, view, pattern, sentence)


def feedback(request: Request, body: Feedback) -> dict[str, Any]:
    try:
        row = record_feedback(state(request).store, body.doc_id, body.verdict, body.pattern_id, body.note)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from exc
    return {"id": row.id, "doc_id": row.doc_id, "pattern_id": row.pattern_id, "verdict": row.verdict}


def parse_since(since: str | None) -> datetime | None:
    if not since:
        return None
    try:
        return datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError as exc:
        raise HTTPException(422, f"since must be an ISO 8601 date or time, not {since!r}") from exc


def sources_of(web: WebState) -> list[data.SourceRow]:
    return data.source_rows(web.store, load_sources(web.settings.sources_file))


__all__ = ["Analyst", "ApiReader", "Filters", "RowId", "Reader", "create_app", "render",
           "state"]
