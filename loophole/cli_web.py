"""``loophole serve``, ``loophole users`` and ``loophole search``: the analysts' commands.

Kept apart from loophole/cli.py so the web work stays in one place; cli.py registers them.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ground.config import MAX_ROW_ID
from loophole.cli_common import command_settings, fail

# uvicorn's default keep-alive is 5 s, the same as httpx's pool expiry: a client reusing a
# connection idle for ~5 s raced the server closing it and got a reset (1 request in ~1,500 under
# 50 clients). A server must keep idle connections longer than its clients do (they then close
# them first); 75 s is nginx's default and above common clients' and load balancers' idle limits.
KEEP_ALIVE_SECONDS = 75

users_app = typer.Typer(help="Web/API users and their tokens (roles: viewer, analyst, admin).",
                        no_args_is_help=True)


def serve(host: Annotated[str | None, typer.Option(help="Address to bind (default: web.host, 127.0.0.1).")] = None,
          port: Annotated[int | None, typer.Option(help="Port (default: web.port).", min=1, max=65535)] = None,
          no_auth: Annotated[bool, typer.Option("--no-auth", help="Read without a token (loopback only).")] = False,
          ) -> None:
    """Serve the web app and JSON API (OpenAPI at /api/openapi.json)."""
    import uvicorn

    from index.vectors import search_threads
    from web.app import create_app

    settings = command_settings()
    web = settings.web.model_copy(update={k: v for k, v in (("host", host), ("port", port)) if v is not None})
    settings = settings.model_copy(update={"web": web})
    settings.ensure_dirs()
    try:
        app = create_app(settings, auth=False if no_auth else None)
    except ValueError as exc:
        raise fail(f"{exc}") from exc
    typer.echo(f"Loophole Watch on http://{web.host}:{web.port}/ (auth {'on' if app.state.web.auth else 'off'})",
               err=True)
    search_threads(1)   # the concurrent requests are the parallelism (index/vectors.py)
    uvicorn.run(app, host=web.host, port=web.port, log_level="warning", timeout_keep_alive=KEEP_ALIVE_SECONDS)


@users_app.command("add")
def users_add(name: Annotated[str, typer.Argument(help="A name for the person or tool.")],
              role: Annotated[str, typer.Option(help="viewer, analyst or admin.")] = "viewer") -> None:
    """Create a user and print their token (shown this once; only its hash is kept)."""
    from index.store import Store
    from web.auth import UserError, add_user

    settings = command_settings()
    settings.ensure_dirs()
    try:
        token = add_user(Store(settings.db_url), name, role)
    except UserError as exc:
        raise fail(f"{exc}") from exc
    typer.echo(token)


@users_app.command("list")
def users_list() -> None:
    """Users with their role and when their token was last used."""
    from index.store import Store
    from web.auth import list_users

    table = Table(title="Users")
    for column in ("name", "role", "created", "last used"):
        table.add_column(column)
    for row in list_users(Store(command_settings().db_url)):
        table.add_row(row.name, row.role, f"{row.created_at:%Y-%m-%d %H:%M}",
                      f"{row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never")
    Console().print(table)


@users_app.command("remove")
def users_remove(name: Annotated[str, typer.Argument()]) -> None:
    """Delete a user; their token stops working at once (within two seconds in a running API server)."""
    from index.store import Store
    from web.auth import UserError, remove_user

    try:
        remove_user(Store(command_settings().db_url), name)
    except UserError as exc:
        raise fail(f"{exc}") from exc
    typer.echo(f"removed {name}")


def search(query: Annotated[str, typer.Argument(help="Any language; matches across Chinese and English.")] = "",
           limit: Annotated[int, typer.Option(help="Documents per page.", min=1, max=100)] = 10,
           page: Annotated[int, typer.Option(help="Page number, from 1.", min=1, max=100_000)] = 1,
           source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
           kind: Annotated[str | None, typer.Option(help="Only this document kind.")] = None,
           lang: Annotated[str | None, typer.Option(help="Only this language (zh, en).")] = None,
           since: Annotated[str | None, typer.Option(help="Published on or after YYYY-MM-DD.")] = None,
           until: Annotated[str | None, typer.Option(help="Published on or before YYYY-MM-DD.")] = None,
           pattern: Annotated[str | None, typer.Option(help="Only documents flagged for this pattern.")] = None,
           entity: Annotated[str | None, typer.Option(help="Only documents naming this watchlist entity.")] = None,
           buyer: Annotated[str | None, typer.Option(help="Buyer name contains this.")] = None,
           min_amount: Annotated[float | None, typer.Option(help="An amount at least this.")] = None,
           max_amount: Annotated[float | None, typer.Option(help="An amount at most this.")] = None,
           view: Annotated[str, typer.Option(help="evidence (primary sources and flagged pages first) or "
                                                  "everything (relevance alone).")] = "evidence",
           like: Annotated[int | None, typer.Option(help="Pages most like this document id, instead of a query.",
                                                    min=1, max=MAX_ROW_ID)] = None,
           as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list, best first.")] = False) -> None:
    """Hybrid (semantic + keyword) search over the indexed passages, the same as the web app's."""
    from index.ranking import VIEWS
    from index.search import SearchFilters, engine_for
    from loophole.pipeline import Monitor

    filters = SearchFilters(source, kind, lang, since, until, pattern, entity, buyer, min_amount, max_amount)
    if view not in VIEWS:
        raise fail(f"--view must be one of {', '.join(VIEWS)}")
    if like is None and not query.strip() and not filters.active():
        raise fail("give a query, --like DOC_ID, or a filter (--source, --kind, --pattern, ...) to list "
                   "documents newest first")
    monitor = Monitor(command_settings())
    engine = engine_for(monitor.settings, monitor.store, monitor.vectors)
    results = (engine.more_like(like, filters, page=page, per_page=limit, view=view) if like is not None
               else engine.search(query, filters, page=page, per_page=limit, view=view))
    if as_json:
        typer.echo(json.dumps([r.as_dict(results.terms) for r in results.results], ensure_ascii=False, indent=2))
        return
    for rank, result in enumerate(results.results, start=(page - 1) * limit + 1):
        typer.echo(f"{rank}. [{result.score:.4f}] {result.title}\n   {result.url}")
        for passage in result.passages[:2]:
            typer.echo(f"   > {passage.text[:160]}")


searches_app = typer.Typer(help="Saved searches: their new results arrive in a subscription's digest.",
                           no_args_is_help=True)


@searches_app.command("add")
def searches_add(name: Annotated[str, typer.Argument(help="A name for the search.")],
                 query: Annotated[str, typer.Argument(help="The query, as typed in the search box.")],
                 subscription: Annotated[str | None, typer.Option(help="Whose digest (default: the first).")] = None,
                 view: Annotated[str, typer.Option(help="evidence or everything.")] = "evidence",
                 top: Annotated[int, typer.Option(help="Watch its first this many results.", min=1, max=50)] = 10,
                 owner: Annotated[str, typer.Option(help="Recorded as its owner.")] = "cli") -> None:
    """Save a search; the pages it shows now are its baseline, later ones go into the digest."""
    from alerts.saved import SavedSearchError, save_search
    from index.search import SearchFilters, engine_for
    from index.store import Store

    settings = command_settings()
    names = [sub.name for sub in settings.effective_subscriptions()]
    if subscription is not None and subscription not in names:
        raise fail(f"no subscription {subscription!r}; configured: {', '.join(names)}")
    store = Store(settings.db_url)
    try:
        row = save_search(store, engine_for(settings, store), owner, name, query, SearchFilters(), view,
                          subscription or names[0], top)
    except SavedSearchError as exc:
        raise fail(f"{exc}") from exc
    typer.echo(f"saved search {row.id} {row.name!r} -> digest {row.subscription!r}")


@searches_app.command("list")
def searches_list() -> None:
    """Every saved search."""
    from alerts.saved import list_searches
    from index.store import Store

    table = Table(title="Saved searches")
    for column in ("id", "name", "query", "view", "digest", "first", "owner"):
        table.add_column(column)
    for row in list_searches(Store(command_settings().db_url)):
        table.add_row(str(row.id), row.name, row.query, row.view, row.subscription, str(row.top), row.owner)
    Console().print(table)


@searches_app.command("remove")
def searches_remove(search_id: Annotated[int, typer.Argument(min=1, max=MAX_ROW_ID)]) -> None:
    """Delete a saved search."""
    from alerts.saved import SavedSearchError, remove_search
    from index.store import Store

    try:
        remove_search(Store(command_settings().db_url), search_id)
    except SavedSearchError as exc:
        raise fail(f"{exc}") from exc
    typer.echo(f"removed saved search {search_id}")


def register(app: typer.Typer) -> None:
    """Add the analysts' commands to the main ``loophole`` app."""
    app.command()(serve)
    app.command()(search)
    app.add_typer(users_app, name="users")
    app.add_typer(searches_app, name="searches")
