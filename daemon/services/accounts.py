"""Users, logins, sessions and API tokens, in the store; every change audited.

A login is password, then (for the roles that need it, admin and billing by default) a
TOTP code or one of the user's single-use recovery codes. Failed logins are counted per
account; past ``api.max_failed_logins`` the account is locked for ``api.lockout_minutes``
(the message says until when, and an admin can unlock it). Session and API tokens are
32 random bytes, shown once and kept only as their SHA-256.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Final

import pyotp
import structlog
from sqlalchemy import case, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from daemon.kernel.clock import Clock, utc_now
from daemon.kernel.errors import MeterdError
from daemon.security.passwords import check_policy, hash_secret, off_loop, verify_secret
from daemon.security.roles import CUSTOMER, ROLES, may_delegate
from daemon.security.secretbox import SecretBox
from daemon.security.throttle import FailureWindow, LaneTimeoutError, SlowLane, Turns, UnknownLogins
from daemon.settings import ApiSettings, Settings
from daemon.storage.audit import write_audit
from daemon.storage.models import PortalLinkRow, SessionRow, UserRow
from daemon.storage.repository import Store

log = structlog.get_logger(__name__)

SESSION: Final = "session"
MACHINE: Final = "api"  # the kind of a machine's token
RECOVERY_CODES: Final = 10
_LOGIN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
# A portal user's login is their e-mail address, as invited.
_PORTAL_LOGIN = re.compile(r"^[a-z0-9][a-z0-9._+-]*@[a-z0-9.-]+\.[a-z]{2,}$")
INVITE: Final = "invite"
RESET: Final = "reset"
_ISSUER: Final = "meterd"
# Verified against when the login is unknown, so an unknown login takes as long as a wrong password.


@cache
def _dummy_hash() -> str:
    """What an unknown login is checked against, so it takes as long as a known one.

    Made at the first such login, not at import: an argon2id hash takes its 64 MiB and a
    quarter of a second, which every ``meterd`` command and the daemon's start paid.
    """
    return hash_secret("not a password anyone has")


class AccountError(MeterdError):
    """A user-management request that cannot be done; the message says why."""


class UserNotFoundError(AccountError):
    """No such user."""


class UserExistsError(AccountError):
    """That login is taken."""


class _ReplayedError(Exception):
    """A one-time code whose time step was already used (internal: the caller answers ``login_failed``)."""


class AuthenticationError(MeterdError):
    """A login or a token that is not accepted; the message is safe to show to the person at the door.

    Attributes:
        code: a fixed word for API clients (``login_failed``, ``second_factor_required``, ``locked`` …).
    """

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class User:
    id: int
    login: str
    name: str
    role: str
    disabled: bool
    second_factor: bool
    failed_logins: int
    locked_until: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for, and with which role (a token's, never more than its user's)."""

    user_id: int
    login: str
    role: str
    kind: str
    session_id: int
    expires_at: datetime  # of the session or token the request came with
    customer_id: int | None = None  # a portal user's customer: what the portal services narrow every read to


@dataclass(frozen=True, slots=True)
class Enrollment:
    """A new second factor: shown once, to be put into an authenticator app and a safe place."""

    secret: str
    uri: str
    recovery_codes: list[str]


@dataclass(frozen=True, slots=True)
class IssuedToken:
    id: int
    token: str  # shown once; only its hash is kept
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    login: str
    kind: str
    name: str | None
    role: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


def secret_key_file(settings: Settings) -> Path:
    return settings.api.secret_key_file or settings.state_dir / "secret.key"


def accounts_for(settings: Settings, store: Store, clock: Clock = utc_now) -> Accounts:
    """The accounts of ``store`` as ``settings`` configure them (lock-out, second factors, the key file)."""
    return Accounts(store, settings.api, SecretBox(secret_key_file(settings)), clock)


class Accounts:
    """The account side of a Store."""

    def __init__(self, store: Store, settings: ApiSettings, box: SecretBox, clock: Clock = utc_now) -> None:
        self._store = store
        self._settings = settings
        self._box = box
        self._clock = clock
        self._turns = Turns(settings.login_attempts_at_once)
        lockout = timedelta(minutes=settings.lockout_minutes)
        self._unknown = UnknownLogins(settings.max_failed_logins, lockout)
        self._by_address = FailureWindow(settings.max_failed_logins_per_address, lockout)
        self._overall = FailureWindow(settings.max_failed_logins_total, lockout)
        self._spray = SlowLane(settings.logins_per_second_under_spray, settings.login_wait_max_s)

    # -- users -------------------------------------------------------------------------------

    async def add_user(self, login: str, name: str, role: str, password: str, *, actor: str) -> Enrollment | None:
        """Create a user; returns the second factor to hand over when the role needs one.

        Raises:
            AccountError: a bad login or role, a taken login; PasswordPolicyError: a weak password.
        """
        if not _LOGIN.match(login):
            msg = f"login {login!r}: 2-64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
            raise AccountError(msg)
        _check_role(role)
        check_policy(password, personal=[login, name])
        enrollment = self._enrollment(login) if role in self._settings.totp_required_for else None
        now = self._clock()
        values = {
            "login": login,
            "name": name,
            "role": role,
            "password_hash": await off_loop(lambda: hash_secret(password)),
            "totp_secret": self._box.seal(enrollment.secret) if enrollment else None,
            "recovery_codes": await _hashed_codes(enrollment),
            "disabled": False,
            "failed_logins": 0,
            "locked_until": None,
            "created_at": now,
            "updated_at": now,
        }

        after = {"name": name, "role": role, "second_factor": enrollment is not None}
        taken = f"user {login!r} exists; change it with `meterd users` or the API"
        await self._insert_user(values, after, taken, actor=actor, now=now)
        return enrollment

    async def users(self) -> list[User]:
        async def _query() -> list[User]:
            async with self._store.engine.connect() as conn:
                rows = (await conn.execute(select(UserRow.__table__).order_by(UserRow.login))).all()
            return [_user(row) for row in rows]

        return await self._store.guard(_query(), "list users")

    async def user(self, login: str) -> User:
        """Raises UserNotFoundError."""
        return _user(await self._row(login))

    async def set_password(self, login: str, password: str, *, actor: str) -> None:
        user = await self.user(login)
        check_policy(password, personal=[login, user.name])
        hashed = await off_loop(lambda: hash_secret(password))
        await self._change(
            login,
            {"password_hash": hashed},
            actor=actor,
            action="user.password",
            audited={"password": "changed"},
            revoke=True,
        )

    async def enroll_second_factor(self, login: str, *, actor: str) -> Enrollment:
        """A new TOTP secret and recovery codes (the old ones stop working)."""
        await self.user(login)
        enrollment = self._enrollment(login)
        values = {"totp_secret": self._box.seal(enrollment.secret), "recovery_codes": await _hashed_codes(enrollment)}
        await self._change(login, values, actor=actor, action="user.second_factor", audited={"second_factor": "new"})
        return enrollment

    async def set_role(self, login: str, role: str, *, actor: str) -> None:
        _check_role(role)
        before = await self.user(login)
        await self._change(
            login,
            {"role": role},
            actor=actor,
            action="user.role",
            audited={"before": {"role": before.role}, "after": {"role": role}},
            revoke=True,
        )

    async def set_disabled(self, login: str, disabled: bool, *, actor: str) -> None:
        """Disabling ends every session and token of the user at once."""
        before = await self.user(login)
        await self._change(
            login,
            {"disabled": disabled},
            actor=actor,
            action="user.disable" if disabled else "user.enable",
            audited={"before": {"disabled": before.disabled}, "after": {"disabled": disabled}},
            revoke=disabled,
        )

    async def unlock(self, login: str, *, actor: str) -> None:
        await self.user(login)
        await self._change(
            login, {"failed_logins": 0, "locked_until": None}, actor=actor, action="user.unlock", audited={}
        )

    async def _insert_user(
        self, values: dict[str, Any], after: dict[str, Any], taken: str, *, actor: str, now: datetime
    ) -> None:
        """Insert a user row and its audit entry in one transaction. Raises UserExistsError(taken)."""
        login = values["login"]

        async def _write() -> None:
            async with self._store.engine.begin() as conn:
                if (await conn.execute(select(UserRow.id).where(UserRow.login == login))).first() is not None:
                    raise UserExistsError(taken)
                await conn.execute(insert(UserRow).values(values))
                await write_audit(conn, now, actor, "user.add", f"user:{login}", {"after": after})

        await self._store.guard(_write(), f"add user {login}")

    # -- portal users ------------------------------------------------------------------------

    async def add_customer_user(self, email: str, name: str, customer_id: int, *, actor: str) -> User:
        """A portal user of one customer, without a usable password until they follow an invitation link.

        Raises:
            AccountError: not an e-mail address; UserExistsError: that address has an account.
        """
        login = email.strip().lower()
        if not _PORTAL_LOGIN.match(login) or len(login) > 64:  # noqa: PLR2004 - the login column
            raise AccountError(f"{email!r}: a portal user's login is their e-mail address (at most 64 characters)")
        unusable = secrets.token_urlsafe(32)  # nobody knows it: the invitation link sets the real one
        now = self._clock()
        values = {
            "login": login,
            "name": name,
            "role": CUSTOMER,
            "customer_id": customer_id,
            "password_hash": await off_loop(lambda: hash_secret(unusable)),
            "totp_secret": None,
            "recovery_codes": "[]",
            "disabled": False,
            "failed_logins": 0,
            "locked_until": None,
            "created_at": now,
            "updated_at": now,
        }

        after = {"name": name, "role": CUSTOMER, "customer_id": customer_id}
        taken = f"{login!r} has an account; send a password reset instead"
        await self._insert_user(values, after, taken, actor=actor, now=now)
        return await self.user(login)

    async def customer_users(self, customer_id: int) -> list[User]:
        async def _query() -> list[User]:
            async with self._store.engine.connect() as conn:
                stmt = select(UserRow.__table__).where(UserRow.customer_id == customer_id).order_by(UserRow.login)
                return [_user(row) for row in (await conn.execute(stmt)).all()]

        return await self._store.guard(_query(), "list portal users")

    async def issue_link(self, login: str, purpose: str, *, valid: timedelta, actor: str) -> str:
        """A single-use link token for a portal user (``invite`` or ``reset``); earlier unused ones stop working."""
        row = await self._row(login)
        if row.role != CUSTOMER:
            raise AccountError(f"{login!r} is a staff account: its password is set with `meterd users password`")
        token = secrets.token_urlsafe(32)
        now = self._clock()

        async def _write() -> None:
            async with self._store.engine.begin() as conn:
                unused = (PortalLinkRow.user_id == row.id) & PortalLinkRow.used_at.is_(None)
                await conn.execute(update(PortalLinkRow).where(unused).values(used_at=now))
                await conn.execute(
                    insert(PortalLinkRow).values(
                        token_hash=_digest(token),
                        user_id=row.id,
                        purpose=purpose,
                        created_at=now,
                        expires_at=now + valid,
                    )
                )
                await write_audit(
                    conn, now, actor, f"user.{purpose}_link", f"user:{login}", {"expires_at": now + valid}
                )

        await self._store.guard(_write(), "issue a portal link")
        return token

    async def link_user(self, token: str) -> User:
        """Whose link this is, while it can still be used. Raises AuthenticationError ``link_invalid``."""
        return _user(await self._live_link(token))

    async def use_link(self, token: str, password: str, *, second_factor: bool) -> Enrollment | None:
        """Set the password a link was sent for (once), unlock the account; optionally a new second factor.

        Raises:
            AuthenticationError: ``link_invalid`` (unknown, used or expired); PasswordPolicyError: a weak password.
        """
        row = await self._live_link(token)
        check_policy(password, personal=[row.login, row.name])
        hashed = await off_loop(lambda: hash_secret(password))
        enrollment = self._enrollment(row.login) if second_factor else None
        values: dict[str, Any] = {"password_hash": hashed, "failed_logins": 0, "locked_until": None}
        if enrollment is not None:
            values |= {
                "totp_secret": self._box.seal(enrollment.secret),
                "recovery_codes": await _hashed_codes(enrollment),
            }
        now = self._clock()

        async def _write() -> None:
            async with self._store.engine.begin() as conn:
                live = (
                    (PortalLinkRow.token_hash == _digest(token))
                    & PortalLinkRow.used_at.is_(None)
                    & (PortalLinkRow.expires_at > now)
                )
                # Claimed in the same transaction as the password: two tabs sending the form set it once.
                if (await conn.execute(update(PortalLinkRow).where(live).values(used_at=now))).rowcount != 1:
                    raise _link_invalid()
                await conn.execute(update(UserRow).where(UserRow.id == row.id).values(values | {"updated_at": now}))
                await conn.execute(
                    update(SessionRow)
                    .where(SessionRow.user_id == row.id, SessionRow.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
                audited = {"password": "set by link", "second_factor": enrollment is not None}
                await write_audit(conn, now, row.login, "user.password", f"user:{row.login}", audited)

        await self._store.guard(_write(), "set a password by link")
        return enrollment

    async def _live_link(self, token: str) -> Any:  # noqa: ANN401 - a users Row
        now = self._clock()

        async def _query() -> Any:  # noqa: ANN401
            async with self._store.engine.connect() as conn:
                stmt = (
                    select(UserRow.__table__, PortalLinkRow.used_at, PortalLinkRow.expires_at.label("link_expires"))
                    .join(PortalLinkRow, PortalLinkRow.user_id == UserRow.id)
                    .where(PortalLinkRow.token_hash == _digest(token))
                )
                return (await conn.execute(stmt)).first()

        row = await self._store.guard(_query(), "read a portal link")
        if row is None or row.used_at is not None or row.link_expires <= now or row.disabled:
            raise _link_invalid()
        return row

    # -- logging in --------------------------------------------------------------------------

    async def login(
        self, login: str, password: str, code: str | None = None, *, address: str | None = None
    ) -> tuple[IssuedToken, Principal]:
        """A session for a person who proved who they are; ``address`` is the client's, for the per-address limit.

        Raises:
            AuthenticationError: ``login_failed`` (wrong login, password or code: which one is not said),
                ``locked`` (until when; alike for real and unknown logins), ``too_many_failures`` (from this
                address; or, during a spray on all accounts, waited past ``api.login_wait_max_s``),
                ``second_factor_required``, ``second_factor_not_set_up``.
        """
        async with self._turns.turn(login), self._judging(address):  # one attempt per account at a time
            now = self._clock()
            try:
                row = await self._row(login)
            except UserNotFoundError:
                if (until := self._unknown.locked_until(login, now)) is not None:
                    raise _locked(login, until) from None
                await off_loop(lambda: verify_secret(_dummy_hash(), password))
                self._unknown.fail(login, now)
                self._count_failure(address, now)
                raise _failed() from None
            if row.locked_until is not None and row.locked_until > now:
                raise _locked(login, row.locked_until)
            if row.disabled or not await off_loop(lambda: verify_secret(row.password_hash, password)):
                await self._failure(row, address, now)
                raise _failed()
            if row.totp_secret is None and row.role in self._settings.totp_required_for:
                msg = f"{row.role} accounts need a second factor; an admin sets it up with `meterd users 2fa {login}`"
                raise AuthenticationError("second_factor_not_set_up", msg)
            step = None
            if row.totp_secret is not None:
                if not code:
                    msg = "this account needs its one-time code from the authenticator app (or a recovery code)"
                    raise AuthenticationError("second_factor_required", msg)
                accepted, step = await self._second_factor(row, code.strip(), now)
                if not accepted:
                    await self._failure(row, address, now)
                    raise _failed()
            try:
                issued = await self._issue(
                    row,
                    SESSION,
                    None,
                    row.role,
                    now + timedelta(hours=self._settings.session_hours),
                    reset_failures=True,
                    actor=login,
                    action="user.login",
                    totp_step=step,
                )
            except _ReplayedError:
                log.warning("totp_replay_refused", login=login, step=step, last_step=row.totp_last_step)
                await self._failure(row, address, now)
                raise _failed() from None
        return issued, Principal(row.id, login, row.role, SESSION, issued.id, issued.expires_at, row.customer_id)

    @contextlib.asynccontextmanager
    async def _judging(self, address: str | None) -> AsyncIterator[None]:
        """Refuse, before any hashing, an address that failed too often; slow everyone down during a spray.

        The limit over all accounts together only slows logins down (SlowLane): refusing them
        would let a spray lock every user out, the right password included.
        """
        now = self._clock()
        key = address or "unknown"
        until = self._by_address.full_until(key, now)
        if until is not None:
            msg = f"too many failed logins from your address: try again after {until:%Y-%m-%d %H:%M:%S} UTC"
            raise AuthenticationError("too_many_failures", msg)
        if self._overall.full_until("", now) is None:
            yield
            return
        try:
            async with self._spray.turn(self._by_address.count(key, now)):
                yield
        except LaneTimeoutError:
            log.warning("login_slowed_past_its_wait", address=key, queued=self._spray.queued)
            msg = "many failed logins on this server: logins are slowed down; try again in a minute"
            raise AuthenticationError("too_many_failures", msg) from None

    def _count_failure(self, address: str | None, now: datetime) -> None:
        self._by_address.add(address or "unknown", now)
        self._overall.add("", now)

    async def authenticate(self, token: str) -> Principal:
        """Who a bearer token stands for.

        Raises:
            AuthenticationError: ``token_invalid`` (unknown, expired, revoked, or its user disabled).
        """
        now = self._clock()
        stmt = (
            select(
                SessionRow.id,
                SessionRow.kind,
                SessionRow.role,
                SessionRow.expires_at,
                SessionRow.revoked_at,
                UserRow.id.label("user_id"),
                UserRow.login,
                UserRow.role.label("user_role"),
                UserRow.disabled,
                UserRow.customer_id,
            )
            .join(UserRow, UserRow.id == SessionRow.user_id)
            .where(SessionRow.token_hash == _digest(token))
        )

        async def _query() -> Any:  # noqa: ANN401 - a Row of the select above
            async with self._store.engine.connect() as conn:
                return (await conn.execute(stmt)).first()

        row = await self._store.guard(_query(), "check a token")
        if row is None or row.revoked_at is not None or row.expires_at <= now or row.disabled:
            raise AuthenticationError("token_invalid", "not logged in, or the session has ended; log in again")
        # A token never does more than its user may do today (the user may have lost a role since).
        role = row.role if may_delegate(row.user_role, row.role) else row.user_role
        return Principal(row.user_id, row.login, role, row.kind, row.id, row.expires_at, row.customer_id)

    async def mark_used(self, session_id: int, *, now: datetime, idle: timedelta) -> bool:
        """Record the session's use at ``now`` if its last use is within ``idle``; False: it was idle longer.

        Check and write are one statement, in the store: two requests at once, or a daemon restarted
        in between, neither end a session early nor give it time it did not earn.
        """
        last = func.coalesce(SessionRow.last_used_at, SessionRow.created_at)
        stmt = (
            update(SessionRow)
            .where(SessionRow.id == session_id, SessionRow.revoked_at.is_(None), last >= now - idle)
            .values(last_used_at=now)
        )

        async def _write() -> bool:
            async with self._store.engine.begin() as conn:
                return (await conn.execute(stmt)).rowcount == 1

        return await self._store.guard(_write(), "record a session's use")

    async def logout(self, principal: Principal) -> None:
        await self._revoke(principal.session_id, actor=principal.login)

    # -- API tokens --------------------------------------------------------------------------

    async def issue_token(self, principal: Principal, *, name: str, role: str, days: int) -> IssuedToken:
        """A token for a machine, of at most the issuer's role, valid ``days`` (at most ``api.token_max_days``)."""
        _check_role(role)
        if not may_delegate(principal.role, role):
            raise AccountError(f"a {principal.role} cannot issue a token that may do more ({role})")
        if not 1 <= days <= self._settings.token_max_days:
            raise AccountError(f"days: 1 to {self._settings.token_max_days} (api.token_max_days)")
        row = await self._row(principal.login)
        now = self._clock()
        expires = now + timedelta(days=days)
        if principal.kind == MACHINE and expires > principal.expires_at:
            # A token never outlives the token that made it: else a short-lived one renews itself for ever.
            msg = (
                f"days: a token cannot outlive the token that issues it (yours ends "
                f"{principal.expires_at:%Y-%m-%d %H:%M} UTC); ask for fewer days, or log in"
            )
            raise AccountError(msg)
        return await self._issue(
            row, MACHINE, name, role, expires, reset_failures=False, actor=principal.login, action="token.issue"
        )

    async def tokens(self, login: str | None = None, *, kind: str = MACHINE) -> list[TokenInfo]:
        """API tokens (of ``login``, or everyone's), newest first; with ``kind=SESSION``, the live login sessions."""
        stmt = (
            select(
                SessionRow.id,
                UserRow.login,
                SessionRow.kind,
                SessionRow.name,
                SessionRow.role,
                SessionRow.created_at,
                SessionRow.expires_at,
                SessionRow.revoked_at,
            )
            .join(UserRow, UserRow.id == SessionRow.user_id)
            .where(SessionRow.kind == kind)
            .order_by(SessionRow.id.desc())
        )
        if login is not None:
            stmt = stmt.where(UserRow.login == login)
        if kind == SESSION:  # ended ones are history (the audit log has them), not something to end again
            stmt = stmt.where(SessionRow.revoked_at.is_(None), SessionRow.expires_at > self._clock())

        async def _query() -> list[TokenInfo]:
            async with self._store.engine.connect() as conn:
                return [TokenInfo(*row) for row in await conn.execute(stmt)]

        return await self._store.guard(_query(), "list tokens")

    async def end_session(self, session_id: int, *, actor: Principal) -> None:
        """End one of ``actor``'s own login sessions (on another device, say)."""
        if session_id not in {s.id for s in await self.tokens(actor.login, kind=SESSION)}:
            raise AccountError(f"no session {session_id} of yours that is still open")
        await self._revoke(session_id, actor=actor.login)

    async def revoke_token(self, token_id: int, *, actor: Principal, any_user: bool) -> None:
        """Revoke one of ``actor``'s tokens (or anyone's, with ``any_user``)."""
        mine = {t.id for t in await self.tokens(None if any_user else actor.login)}
        if token_id not in mine:
            raise AccountError(f"no token {token_id} that you may revoke")
        await self._revoke(token_id, actor=actor.login)

    # -- the parts -------------------------------------------------------------------------

    def _enrollment(self, login: str) -> Enrollment:
        secret = pyotp.random_base32()
        codes = [f"{secrets.token_hex(3)}-{secrets.token_hex(3)}" for _ in range(RECOVERY_CODES)]
        return Enrollment(secret, pyotp.TOTP(secret).provisioning_uri(name=login, issuer_name=_ISSUER), codes)

    async def _second_factor(self, row: Any, code: str, now: datetime) -> tuple[bool, int | None]:  # noqa: ANN401
        """Whether ``code`` is a current TOTP code, with its step, or a recovery code (used up here).

        One step either side of now is accepted for clock drift.
        The step is claimed when the session is issued, only if newer than the user's last one: a code seen
        over a shoulder or in a log cannot be replayed, not even within its step (RFC 6238 section 5.2).
        """
        totp = pyotp.TOTP(self._box.open(row.totp_secret))
        current = totp.timecode(now)
        for step in (current - 1, current, current + 1):
            if hmac.compare_digest(totp.generate_otp(step), code):
                return True, step
        hashes: list[str] = json.loads(row.recovery_codes)
        used = await off_loop(lambda: next((i for i, hashed in enumerate(hashes) if verify_secret(hashed, code)), None))
        if used is None:
            return False, None
        left = hashes[:used] + hashes[used + 1 :]
        await self._change(
            row.login,
            {"recovery_codes": json.dumps(left)},
            actor=row.login,
            action="user.recovery_code_used",
            audited={"left": len(left)},
        )
        return True, None

    async def _failure(self, row: Any, address: str | None, now: datetime) -> None:  # noqa: ANN401 - a users Row
        """Count a failure in one statement (parallel failures all count), locking the account at the limit."""
        self._count_failure(address, now)
        counted = UserRow.failed_logins + 1
        reached = counted >= self._settings.max_failed_logins
        until = now + timedelta(minutes=self._settings.lockout_minutes)
        stmt = (
            update(UserRow)
            .where(UserRow.id == row.id)
            .values(
                failed_logins=case((reached, 0), else_=counted),
                locked_until=case((reached, until), else_=UserRow.locked_until),
            )
            .returning(UserRow.failed_logins, UserRow.locked_until)
        )

        async def _write() -> None:
            async with self._store.engine.begin() as conn:
                failures, locked_until = (await conn.execute(stmt)).one()
                if failures == 0:  # this failure reached the limit
                    await write_audit(
                        conn,
                        now,
                        "system",
                        "user.locked",
                        f"user:{row.login}",
                        {"failed_logins": self._settings.max_failed_logins, "locked_until": locked_until},
                    )
                else:  # a security event, and a change to the user's row: audited like any
                    await write_audit(
                        conn, now, "system", "user.login_failed", f"user:{row.login}", {"failed_logins": failures}
                    )

        await self._store.guard(_write(), "count a failed login")

    async def _issue(
        self,
        row: Any,  # noqa: ANN401 - a users Row
        kind: str,
        name: str | None,
        role: str,
        expires: datetime,
        *,
        reset_failures: bool,
        actor: str,
        action: str,
        totp_step: int | None = None,
    ) -> IssuedToken:
        """A new session or token; ``totp_step``: the one-time code's step, claimed in the same transaction.

        Raises:
            _ReplayedError: that step (or a later one) was used already.
        """
        token = secrets.token_urlsafe(32)
        now = self._clock()

        async def _write() -> int:
            async with self._store.engine.begin() as conn:
                if totp_step is not None:
                    claimed = await conn.execute(
                        update(UserRow)
                        .where(
                            UserRow.id == row.id,
                            or_(UserRow.totp_last_step.is_(None), UserRow.totp_last_step < totp_step),
                        )
                        .values(totp_last_step=totp_step)
                    )
                    if claimed.rowcount != 1:
                        raise _ReplayedError
                result = await conn.execute(
                    insert(SessionRow).values(
                        token_hash=_digest(token),
                        user_id=row.id,
                        kind=kind,
                        name=name,
                        role=role,
                        created_at=now,
                        expires_at=expires,
                        last_used_at=now,
                    )
                )
                session_id = int(result.inserted_primary_key[0])  # type: ignore[index]
                if reset_failures and row.failed_logins:
                    await conn.execute(update(UserRow).where(UserRow.id == row.id).values(failed_logins=0))
                await write_audit(
                    conn,
                    now,
                    actor,
                    action,
                    f"user:{row.login}",
                    {"session": session_id, "kind": kind, "name": name, "role": role, "expires_at": expires},
                )
                return session_id

        session_id = await self._store.guard(_write(), "start a session")
        return IssuedToken(session_id, token, expires)

    async def _revoke(self, session_id: int, *, actor: str) -> None:
        now = self._clock()

        async def _write() -> None:
            async with self._store.engine.begin() as conn:
                await conn.execute(
                    update(SessionRow)
                    .where(SessionRow.id == session_id, SessionRow.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
                await write_audit(conn, now, actor, "session.revoke", f"session:{session_id}", {})

        await self._store.guard(_write(), "revoke a session")

    async def _change(
        self,
        login: str,
        values: dict[str, Any],
        *,
        actor: str,
        action: str,
        audited: dict[str, Any],
        revoke: bool = False,
    ) -> None:
        """Update one user and write its audit entry in one transaction; ``revoke`` ends its sessions and tokens."""
        now = self._clock()

        async def _write() -> None:
            async with self._store.engine.begin() as conn:
                user_id = await _user_id(conn, login)
                await conn.execute(update(UserRow).where(UserRow.id == user_id).values(values | {"updated_at": now}))
                if revoke:
                    await conn.execute(
                        update(SessionRow)
                        .where(SessionRow.user_id == user_id, SessionRow.revoked_at.is_(None))
                        .values(revoked_at=now)
                    )
                await write_audit(conn, now, actor, action, f"user:{login}", audited)

        await self._store.guard(_write(), f"change user {login}")

    async def _row(self, login: str) -> Any:  # noqa: ANN401 - a users Row
        async def _query() -> Any:  # noqa: ANN401
            async with self._store.engine.connect() as conn:
                return (await conn.execute(select(UserRow.__table__).where(UserRow.login == login))).first()

        row = await self._store.guard(_query(), "read user")
        if row is None:
            raise UserNotFoundError(f"no user {login!r}; `meterd users list` shows them")
        return row


async def _user_id(conn: AsyncConnection, login: str) -> int:
    found = (await conn.execute(select(UserRow.id).where(UserRow.login == login))).scalar_one_or_none()
    if found is None:
        raise UserNotFoundError(f"no user {login!r}; `meterd users list` shows them")
    return int(found)


def _user(row: Any) -> User:  # noqa: ANN401 - a users Row
    return User(
        row.id,
        row.login,
        row.name,
        row.role,
        row.disabled,
        row.totp_secret is not None,
        row.failed_logins,
        row.locked_until,
        row.created_at,
        row.updated_at,
    )


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise AccountError(f"role {role!r}: one of {', '.join(ROLES)}")


async def _hashed_codes(enrollment: Enrollment | None) -> str:
    """The recovery codes as stored: a JSON list of their hashes (ten argon2 hashes: in the hashing pool)."""
    codes = enrollment.recovery_codes if enrollment else []
    return json.dumps(await off_loop(lambda: [hash_secret(code) for code in codes]))


def _locked(login: str, until: datetime) -> AuthenticationError:
    msg = (
        f"too many failed logins: locked until {until:%Y-%m-%d %H:%M} UTC; "
        f"wait, or ask an admin to run `meterd users unlock {login}`"
    )
    return AuthenticationError("locked", msg)


def _link_invalid() -> AuthenticationError:
    msg = "this link is not valid any more (used, replaced by a newer one, or expired); ask for a new one"
    return AuthenticationError("link_invalid", msg)


def _failed() -> AuthenticationError:
    return AuthenticationError("login_failed", "wrong login, password or one-time code")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
