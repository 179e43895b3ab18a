"""Logging in and out, who am I, API tokens, users (admins), the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, Field

from daemon.api.paging import Limit, Offset, Page, page
from daemon.api.security import Context, requires
from daemon.security.roles import Role
from daemon.services.accounts import SESSION, Principal, TokenInfo, User
from daemon.storage.audit import AuditRecord, find_audit

router = APIRouter()
Anyone = Annotated[Principal, requires("self")]
Admin = Annotated[Principal, requires("users.manage")]
AuditReader = Annotated[Principal, requires("audit.read")]
Id = Annotated[int, Path(ge=1, le=2**62)]
Login = Annotated[str, Path(min_length=1, max_length=64)]


class LoginRequest(BaseModel):
    login: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    code: str | None = Field(default=None, max_length=32, description="TOTP code, or a recovery code")


class SessionOut(BaseModel):
    token: str = Field(description="send as Authorization: Bearer TOKEN; shown this once")
    expires_at: datetime
    login: str
    role: str


class Me(BaseModel):
    login: str
    role: str
    kind: str


@router.post("/auth/login", tags=["auth"], summary="log in: password, then the one-time code where the role needs one")
async def login(body: LoginRequest, context: Context, request: Request) -> SessionOut:
    address = request.client.host if request.client else None
    issued, principal = await context.accounts.login(body.login, body.password, body.code, address=address)
    return SessionOut(token=issued.token, expires_at=issued.expires_at, login=principal.login, role=principal.role)


@router.post("/auth/logout", tags=["auth"], status_code=204, response_class=Response)
async def logout(who: Anyone, context: Context) -> None:
    await context.accounts.logout(who)


@router.get("/auth/me", tags=["auth"])
async def me(who: Anyone) -> Me:
    return Me(login=who.login, role=who.role, kind=who.kind)


class SessionInfo(BaseModel):
    id: int
    created_at: datetime
    expires_at: datetime
    current: bool = Field(description="the session this request came with")


@router.get("/auth/sessions", tags=["auth"], summary="your open login sessions, newest first")
async def my_sessions(who: Anyone, context: Context) -> list[SessionInfo]:
    return [
        SessionInfo(id=s.id, created_at=s.created_at, expires_at=s.expires_at, current=s.id == who.session_id)
        for s in await context.accounts.tokens(who.login, kind=SESSION)
    ]


@router.delete(
    "/auth/sessions/{session_id}",
    tags=["auth"],
    status_code=204,
    response_class=Response,
    summary="end one of your sessions (a lost laptop, a shared screen)",
)
async def end_session(session_id: Id, who: Anyone, context: Context) -> None:
    await context.accounts.end_session(session_id, actor=who)


class TokenRequest(BaseModel):
    name: str = Field(min_length=1, max_length=128, description="what the machine is, e.g. 'erp-export'")
    role: Role
    days: int = Field(ge=1, le=3650)


class TokenOut(BaseModel):
    id: int
    token: str = Field(description="shown this once; only its hash is kept")
    expires_at: datetime


@router.get("/tokens", tags=["auth"], summary="your API tokens")
async def my_tokens(who: Anyone, context: Context) -> list[TokenInfo]:
    return await context.accounts.tokens(who.login)


@router.post("/tokens", tags=["auth"], status_code=201, summary="a token for a machine, never stronger than you")
async def issue_token(body: TokenRequest, who: Anyone, context: Context) -> TokenOut:
    issued = await context.accounts.issue_token(who, name=body.name, role=body.role, days=body.days)
    return TokenOut(id=issued.id, token=issued.token, expires_at=issued.expires_at)


@router.delete("/tokens/{token_id}", tags=["auth"], status_code=204, response_class=Response)
async def revoke_token(token_id: Id, who: Anyone, context: Context) -> None:
    await context.accounts.revoke_token(token_id, actor=who, any_user=who.role == "admin")


class NewUser(BaseModel):
    login: str = Field(min_length=2, max_length=64)
    name: str = Field(min_length=1, max_length=256)
    role: Role
    password: str = Field(min_length=1, max_length=1024)


class Enrolled(BaseModel):
    user: User
    totp_uri: str | None = Field(description="for the authenticator app; shown this once")
    recovery_codes: list[str] = Field(description="single-use; shown this once")


class UserChange(BaseModel):
    role: Role | None = None
    disabled: bool | None = None
    password: str | None = Field(default=None, min_length=1, max_length=1024)


@router.get("/users", tags=["users"])
async def users(who: Admin, context: Context) -> list[User]:  # noqa: ARG001
    return await context.accounts.users()


@router.post("/users", tags=["users"], status_code=201, summary="add a user (admin and billing get a second factor)")
async def add_user(body: NewUser, who: Admin, context: Context) -> Enrolled:
    enrollment = await context.accounts.add_user(body.login, body.name, body.role, body.password, actor=who.login)
    user = await context.accounts.user(body.login)
    return Enrolled(
        user=user,
        totp_uri=enrollment.uri if enrollment else None,
        recovery_codes=enrollment.recovery_codes if enrollment else [],
    )


@router.patch("/users/{login}", tags=["users"], summary="change a user's role, password, or disable them")
async def change_user(login: Login, body: UserChange, who: Admin, context: Context) -> User:
    accounts = context.accounts
    await accounts.user(login)
    if body.role is not None:
        await accounts.set_role(login, body.role, actor=who.login)
    if body.password is not None:
        await accounts.set_password(login, body.password, actor=who.login)
    if body.disabled is not None:
        await accounts.set_disabled(login, body.disabled, actor=who.login)
    return await accounts.user(login)


@router.post("/users/{login}/second-factor", tags=["users"], summary="a new TOTP secret and recovery codes")
async def second_factor(login: Login, who: Admin, context: Context) -> Enrolled:
    enrollment = await context.accounts.enroll_second_factor(login, actor=who.login)
    return Enrolled(
        user=await context.accounts.user(login), totp_uri=enrollment.uri, recovery_codes=enrollment.recovery_codes
    )


@router.post("/users/{login}/unlock", tags=["users"])
async def unlock(login: Login, who: Admin, context: Context) -> User:
    await context.accounts.unlock(login, actor=who.login)
    return await context.accounts.user(login)


@router.get("/audit", tags=["audit"], summary="who changed what, newest first")
async def audit(
    *,
    _who: AuditReader,
    context: Context,
    limit: Limit = 100,
    offset: Offset = 0,
    target: Annotated[str | None, Query(max_length=128, description="e.g. customer:ACME, or customer: for all")] = None,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    since: AwareDatetime | None = None,
) -> Page[AuditRecord]:
    found = await find_audit(context.store, target=target, actor=actor, since=since, limit=limit + 1, offset=offset)
    result = page(found, 0, limit)
    return Page[AuditRecord](
        items=result.items,
        offset=offset,
        limit=limit,
        next_offset=offset + limit if result.next_offset is not None else None,
    )
