"""The saga console at /console: pages of what the admin API's own route functions answer, for an administrator
signed in through /v1/auth/token (static/console.js keeps the token in a cookie for these pages; its path is
/console and these pages only read). Operators' actions go through the admin API itself, with the bearer token."""

from collections.abc import Awaitable
from pathlib import Path
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse

from sagashop.kit.errors import DomainError, NotFound, Unauthenticated
from sagashop.saga import SagaState

from .. import console
from ..deps import Backends, TokenIssuer
from ..schemas import IdPath
from ..tokens import Principal
from . import breakers, faults, sagas

router = APIRouter(prefix="/console", include_in_schema=False)
COOKIE = "sagashop_console"
STATIC = Path(__file__).resolve().parents[1] / "static"
ASSETS = {"console.js": "text/javascript", "console.css": "text/css", "favicon.svg": "image/svg+xml"}
T = TypeVar("T")


async def signed_in(request: Request, issuer: TokenIssuer) -> Principal | None:
    """The administrator whose token the console cookie holds, if it is a valid one."""
    try:
        user = issuer.verify(request.cookies.get(COOKIE, ""))
    except Unauthenticated:
        return None
    return user if user.is_admin else None


Admin = Annotated[Principal | None, Depends(signed_in)]


async def panel(load: Awaitable[T], what: str) -> T | str:
    """What the admin API answered for one panel of a page, or why it could not."""
    try:
        return await load
    except DomainError as e:
        return f"{what} unavailable: {e}"


@router.get("")
async def overview(admin: Admin, b: Backends, state: SagaState | None = None) -> HTMLResponse:
    if admin is None:
        return HTMLResponse(console.login())
    found = await sagas.list_sagas(admin, b, state=state, limit=50)
    return HTMLResponse(console.overview(found, await panel(breakers.list_breakers(admin, b), "circuit breakers"),
                                         await panel(faults.list_faults(admin, b), "fault rules"), state))


@router.get("/sagas/{saga_id}")
async def saga_page(saga_id: IdPath, admin: Admin, b: Backends) -> HTMLResponse:
    if admin is None:
        return HTMLResponse(console.login())
    return HTMLResponse(console.saga_page(await sagas.admin_saga(saga_id, admin, b)))


@router.get("/sagas/{saga_id}/timeline")
async def timeline(saga_id: IdPath, admin: Admin, b: Backends) -> HTMLResponse:
    """The timeline alone: console.js reloads it every second while the saga runs."""
    if admin is None:
        raise Unauthenticated("sign in to the console again")
    return HTMLResponse(console.timeline(await sagas.admin_saga(saga_id, admin, b)))


@router.get("/static/{name}")
async def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise NotFound(f"no console asset {name!r}")
    return FileResponse(STATIC / name, media_type=ASSETS[name])
