"""The JSON API (described at /api/openapi.json) for trust-and-safety tooling."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from alerts.saved import MAX_TOP, list_searches
from ground.config import MAX_ROW_ID
from index.search import SearchFilters, SearchPage
from index.store import SavedSearch
from web import data
from web.app import (
    FILTER_FIELDS,
    Analyst,
    ApiReader,
    Feedback,
    Filters,
    Reader,
    RowId,
    View,
    clean_filters,
    feedback,
    more_like,
    parse_since,
    remove,
    save,
    state,
)

VIEW_HELP = "evidence: primary sources and flagged pages first (the default); everything: relevance alone"
LIKE_HELP = "rank the pages most like this document instead of a query"
LIKE_ALERT_HELP = "rank the pages most like this alert's evidence (its document, pattern and decisive line)"

router = APIRouter(prefix="/api", tags=["api"])


@router.get("/search", summary="Hybrid search, documents best first", response_class=JSONResponse)
async def api_search(request: Request, _user: ApiReader, filters: Filters,
                     q: Annotated[str, Query(max_length=2000)] = "",
                     page: Annotated[int, Query(ge=1, le=1000)] = 1,
                     per_page: Annotated[int, Query(ge=1, le=100)] = 10,
                     view: Annotated[View, Query(description=VIEW_HELP)] = "evidence",
                     like: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID, description=LIKE_HELP)] = None,
                     like_alert: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID, description=LIKE_ALERT_HELP)] = None,
                     ) -> Response:
    """A page of results, or with ``like`` / ``like_alert`` the pages most like a document or an
    alert's evidence. A page already cached is answered on the event loop; anything else (the
    model, the indexes, the store) runs in a worker thread."""
    like_this = like is not None or like_alert is not None
    if not like_this and not q.strip() and not filters.active():
        raise HTTPException(422, "give q, or a filter (source, kind, lang, pattern, ...) to list documents "
                                 "newest first")
    engine = None if like_this else state(request).ready_engine()
    found = engine.cached(q, filters, page, per_page, view=view) if engine is not None else None
    if found is None:
        found = await run_in_threadpool(_search, request, filters, q, page, per_page, view, like, like_alert)
    return Response(found.as_json(), media_type="application/json")


def _search(request: Request, filters: SearchFilters, q: str, page: int, per_page: int, view: str,
            like: int | None, like_alert: int | None) -> SearchPage:
    engine = state(request).engine()
    if like is not None or like_alert is not None:
        return more_like(request, engine, filters, page, per_page, view, like, like_alert)
    return engine.search(q, filters, page, per_page, view=view)


@router.get("/documents/{doc_id}", summary="A document with fields, entities, pattern scores and alerts")
def api_document(request: Request, doc_id: RowId, _user: Reader) -> dict[str, Any]:
    web = state(request)
    view = data.document_view(web.store, web.engine(), web.library, doc_id)
    if view is None:
        raise HTTPException(404, f"no document {doc_id}")
    return view.as_dict()


@router.get("/alerts", summary="Alerts, newest first; `since` (ISO 8601) for incremental polling")
def api_alerts(request: Request, _user: Reader, since: str | None = None, status: str | None = None,
               pattern: str | None = None,
               limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> list[dict[str, Any]]:
    web = state(request)
    rows = data.list_alerts(web.store, status, pattern, parse_since(since), limit)
    parties = data.parties_of(web.store, [doc.id for _, doc in rows])
    return [data.alert_dict(alert, doc, parties[doc.id]) for alert, doc in rows]


@router.get("/screen", summary="Matches of one name (Chinese or English) on the restriction lists, best first")
def api_screen(request: Request, _user: Reader,
               name: Annotated[str, Query(min_length=1, max_length=300)]) -> list[dict[str, Any]]:
    """Each match has `list`, `entry_name`, `matched_name`, `method`, `score` and `strength`
    ("listed", or "possible": a lead to check, not a fact). 409 while no list is loaded."""
    screener = state(request).screener()
    if screener is None:
        raise HTTPException(409, "no restriction lists loaded (loophole lists update FILE...)")
    return [m.as_dict() for m in screener.screen(name)]


class SearchToSave(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    q: str = Field("", max_length=2000)
    view: View = "evidence"
    subscription: str = Field("", max_length=64, description="a configured subscription; empty: the first")
    top: int = Field(10, ge=1, le=MAX_TOP, description="its first this many results are watched")
    filters: dict[str, str] = Field(default_factory=dict, description="source, kind, lang, date_from, date_to, "
                                    "pattern, entity, buyer, amount_min, amount_max")


def saved_dict(row: SavedSearch) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "owner": row.owner, "q": row.query, "filters": row.filters,
            "view": row.view, "subscription": row.subscription, "top": row.top,
            "created_at": row.created_at.isoformat()}


@router.get("/searches", summary="Saved searches (their new results arrive in their subscription's digest)")
def api_searches(request: Request, _user: Reader) -> list[dict[str, Any]]:
    return [saved_dict(row) for row in list_searches(state(request).store)]


@router.post("/searches", summary="Save a search into a subscription's digest (analyst)", status_code=201)
def api_save_search(request: Request, body: SearchToSave, user: Analyst) -> dict[str, Any]:
    unknown = sorted(set(body.filters) - set(FILTER_FIELDS))
    if unknown:
        raise HTTPException(422, f"unknown filter(s) {unknown}; use {', '.join(FILTER_FIELDS)}")
    filters = clean_filters(**{key: body.filters.get(key) for key in FILTER_FIELDS})
    return saved_dict(save(request, user, body.name, body.q, filters, body.view, body.subscription, body.top))


@router.delete("/searches/{search_id}", summary="Delete a saved search: one's own, or any as an admin",
               status_code=204)
def api_delete_search(request: Request, search_id: RowId, user: Analyst) -> Response:
    remove(request, user, search_id)
    return Response(status_code=204)


@router.post("/feedback", summary="Confirm or dismiss a document's alerts (analyst)")
def api_feedback(request: Request, body: Feedback, _user: Analyst) -> dict[str, Any]:
    return feedback(request, body)
