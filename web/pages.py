"""Server-rendered pages: search, saved searches, document, alerts (triage), patterns, sources, login."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from alerts.saved import list_searches
from ground.config import MAX_ROW_ID
from index.ranking import VIEWS
from web import data
from web.app import (
    COOKIE,
    FILTER_FIELDS,
    Analyst,
    Feedback,
    Filters,
    Reader,
    RowId,
    View,
    check_csrf,
    check_same_origin,
    clean_filters,
    feedback,
    more_like,
    remove,
    render,
    save,
    sources_of,
    state,
)
from web.auth import authenticate

router = APIRouter(include_in_schema=False)


@router.get("/")
def home() -> Response:
    return RedirectResponse("/search", status_code=303)


@router.get("/search")
def search_page(request: Request, _user: Reader, filters: Filters,
                q: Annotated[str, Query(max_length=2000)] = "",
                page: Annotated[int, Query(ge=1, le=1000)] = 1,
                view: View = "evidence",
                like: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
                like_alert: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None) -> HTMLResponse:
    """Search, or "more like this" a document or an alert; evidence first or everything."""
    web = state(request)
    size, results, seed = web.settings.web.page_size, None, None
    if like is not None or like_alert is not None:
        results = more_like(request, web.engine(), filters, page, size, view, like, like_alert)
        seed = data.document_title(web.store, results.like) if results.like else None
    elif q.strip() or filters.active():
        results = web.engine().search(q, filters, page, size, view=view)
    return render(request, "search.html", {
        "q": q, "filters": filters, "results": results, "view": view, "seed": seed, "like_alert": like_alert,
        "patterns": web.library.patterns, "query_args": _query_args(request, "page"),
        "view_args": _query_args(request, "page", "view"),
        "subscriptions": [sub.name for sub in web.settings.effective_subscriptions()]})


def _query_args(request: Request, *leave_out: str) -> list[tuple[str, str]]:
    """The current query minus some parameters (the page, for the pager; the view, for the switch)."""
    return [(key, value) for key, value in request.query_params.multi_items() if key not in leave_out]


@router.post("/searches")
async def save_search_form(request: Request, user: Analyst) -> Response:
    """Save the search on screen (its query, view and filters, sent as form fields) into a
    subscription's digest (analyst)."""
    form = await request.form()
    field = {key: str(value)[:2000] for key, value in form.items() if isinstance(value, str)}
    check_csrf(request, user, field.get("csrf", ""))
    filters = clean_filters(**{key: field.get(key) for key in FILTER_FIELDS})
    view = field.get("view") or "evidence"
    if view not in VIEWS:
        raise HTTPException(422, f"view must be one of {', '.join(VIEWS)}")
    top = _form_int(field.get("top"), "top")
    await run_in_threadpool(save, request, user, field.get("name", ""), field.get("q", ""), filters, view,
                            field.get("subscription", ""), top)
    return RedirectResponse("/searches", status_code=303)


def _form_int(value: str | None, name: str, default: int = 10) -> int:
    try:
        return int(value) if value and value.strip() else default
    except ValueError as exc:
        raise HTTPException(422, f"{name} must be a whole number") from exc


@router.get("/searches")
def searches_page(request: Request, _user: Reader) -> HTMLResponse:
    web = state(request)
    return render(request, "searches.html", {"rows": list_searches(web.store)})


@router.post("/searches/{search_id}/delete")
def delete_search_form(request: Request, search_id: RowId, user: Analyst,
                       csrf: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, user, csrf)
    remove(request, user, search_id)
    return RedirectResponse("/searches", status_code=303)


@router.get("/documents/{doc_id}")
def document_page(request: Request, doc_id: RowId, _user: Reader) -> HTMLResponse:
    web = state(request)
    view = data.document_view(web.store, web.engine(), web.library, doc_id)
    if view is None:
        raise HTTPException(404, f"no document {doc_id}")
    return render(request, "document.html", {"view": view, "doc": view.doc, "library": web.library.by_id})


@router.get("/documents/{doc_id}/saved")
def saved_copy(request: Request, doc_id: RowId, _user: Reader) -> PlainTextResponse:
    """The fetched bytes as plain text in a sandbox: readable, never rendered or run."""
    web = state(request)
    view = data.document_view(web.store, None, web.library, doc_id)
    if view is None or view.snapshot is None:
        raise HTTPException(404, "no saved copy")
    try:
        text = data.snapshot_text(view.snapshot, view.doc.encoding)
    except OSError as exc:
        raise HTTPException(404, "the saved copy is missing from the snapshot folder") from exc
    return PlainTextResponse(text, headers={"Content-Security-Policy": "sandbox; default-src 'none'"})


@router.get("/alerts")
def alerts_page(request: Request, _user: Reader, status: str = "new", pattern: str = "") -> HTMLResponse:
    web = state(request)
    status = status if status in (*data.ALERT_STATUSES, "all") else "new"
    rows = data.list_alerts(web.store, None if status == "all" else status, pattern or None)
    parties = data.parties_of(web.store, [doc.id for _, doc in rows])
    return render(request, "alerts.html", {"rows": rows, "status": status, "pattern": pattern, "parties": parties,
                                           "statuses": data.ALERT_STATUSES, "patterns": web.library.patterns})


@router.post("/alerts/{alert_id}/triage")
def triage(request: Request, alert_id: RowId, user: Analyst, verdict: Annotated[str, Form()],
           csrf: Annotated[str, Form()] = "", note: Annotated[str, Form(max_length=4000)] = "",
           back: Annotated[str, Form()] = "/alerts") -> Response:
    check_csrf(request, user, csrf)
    if verdict not in ("confirm", "dismiss"):
        raise HTTPException(422, "verdict must be confirm or dismiss")
    web = state(request)
    alert = data.get_alert(web.store, alert_id)
    if alert is None:
        raise HTTPException(404, f"no alert {alert_id}")
    feedback(request, Feedback(doc_id=alert.doc_id, verdict=verdict,
                               pattern_id=alert.pattern_id, note=note))
    target = back if back.startswith("/") and not back.startswith("//") else "/alerts"
    return RedirectResponse(target, status_code=303)


@router.get("/patterns")
def patterns_page(request: Request, _user: Reader) -> HTMLResponse:
    web = state(request)
    return render(request, "patterns.html", {"library": web.library, "stats": data.pattern_stats(web.store),
                                             "thresholds": data.thresholds(web.library)})


@router.get("/sources")
def sources_page(request: Request, _user: Reader) -> HTMLResponse:
    return render(request, "sources.html", {"rows": sources_of(state(request))})


@router.get("/login")
def login_form(request: Request) -> HTMLResponse:
    return render(request, "login.html", {"error": ""})


@router.post("/login")
def login(request: Request, token: Annotated[str, Form(max_length=200)]) -> Response:
    check_same_origin(request)
    if authenticate(state(request).store, token.strip()) is None:
        return render(request, "login.html", {"error": "Unknown token."}, status=401)
    response = RedirectResponse("/search", status_code=303)
    response.set_cookie(COOKIE, token.strip(), httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", max_age=30 * 86400)
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    check_same_origin(request)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response
