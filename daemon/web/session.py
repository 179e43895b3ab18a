"""Who is at the browser: the API's session token in an HttpOnly cookie, an idle timeout, CSRF tokens.

The cookie holds a session token from :meth:`Accounts.login`, so lock-out, second factors,
expiry and revocation are the API's own. On top, the console ends a session nobody has used
for ``idle`` (``console.session_idle_minutes``; revoking its token, audited). The last use is
kept in the store with the session, so a restarted daemon neither logs anyone out early nor
lets a session outlive its idle time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from fastapi import Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from daemon.kernel.clock import Clock
from daemon.kernel.errors import MeterdError
from daemon.security.roles import CUSTOMER, allowed
from daemon.services.accounts import Accounts, AuthenticationError, Principal

SESSION_COOKIE: Final = "meterd_session"
PRE_LOGIN_COOKIE: Final = "meterd_pre"  # binds the login form's CSRF token to this browser
LANGUAGE_COOKIE: Final = "meterd_lang"
CSRF_FIELD: Final = "csrf"


class LoginRequiredError(MeterdError):
    """No session, or it has ended (expired, revoked, idle too long); the message says which."""


class CsrfError(MeterdError):
    """A form came without the token this session's pages carry (another site's form, or a stale page)."""


class ForbiddenError(MeterdError):
    """The user's role does not hold the permission this control needs."""


@dataclass(frozen=True, slots=True)
class WebUser:
    principal: Principal
    csrf: str

    def can(self, permission: str) -> bool:
        return allowed(self.principal.role, permission)

    def require(self, permission: str) -> None:
        """Raises ForbiddenError: the server refuses what the page would not have shown."""
        if not self.can(permission):
            msg = f"a {self.principal.role} may not do this ({permission}); ask an admin"
            raise ForbiddenError(msg)


class Sessions:
    """The sessions of one door: the staff console (``customers=False``) or the customers' portal.

    Each door has its own cookie and takes only its own accounts: a portal user's session never opens
    a console page (whose Today and Devices show every customer), nor a staff session a portal page.
    """

    def __init__(
        self,
        accounts: Accounts,
        clock: Clock,
        idle: timedelta,
        *,
        cookie: str = SESSION_COOKIE,
        customers: bool = False,
    ) -> None:
        self._accounts = accounts
        self._clock = clock
        self._idle = idle
        self.cookie = cookie
        self._customers = customers
        self._key = secrets.token_bytes(32)

    def csrf_for(self, binding: str) -> str:
        return hmac.new(self._key, binding.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, binding: str | None, sent: object) -> None:
        """Raises CsrfError unless ``sent`` is the token of ``binding`` (a session or pre-login cookie)."""
        if not binding or not isinstance(sent, str) or not hmac.compare_digest(self.csrf_for(binding), sent):
            raise CsrfError("this form is missing its security token or it is stale; reload the page and try again")

    async def checked_form(self, request: Request, *, before_login: bool) -> FormData:
        """The posted form, refused (403) unless it carries this session's (or this login page's) CSRF token."""
        form = await request.form()
        binding = request.cookies.get(PRE_LOGIN_COOKIE if before_login else self.cookie)
        self.check_csrf(binding, form.get(CSRF_FIELD))
        return form

    def pre_login(self, request: Request) -> str:
        return request.cookies.get(PRE_LOGIN_COOKIE) or secrets.token_urlsafe(32)

    async def user(self, request: Request) -> WebUser:
        """Raises LoginRequiredError."""
        token = request.cookies.get(self.cookie)
        if not token:
            raise LoginRequiredError("log in to continue")
        try:
            principal = await self._accounts.authenticate(token)
        except AuthenticationError as err:
            raise LoginRequiredError(str(err)) from err
        if (principal.role == CUSTOMER) != self._customers:
            raise LoginRequiredError(self._wrong_door)
        if not await self._accounts.mark_used(principal.session_id, now=self._clock(), idle=self._idle):
            await self._accounts.logout(principal)
            minutes = int(self._idle.total_seconds() // 60)
            raise LoginRequiredError(f"your session ended after {minutes} minutes without use; log in again")
        return WebUser(principal, self.csrf_for(token))

    async def start(self, response: Response, request: Request, login: str, password: str, code: str) -> None:
        """Log in (the API's rules) and hand the session to the browser. Raises AuthenticationError."""
        issued, principal = await self._accounts.login(login, password, code or None)
        if (principal.role == CUSTOMER) != self._customers:
            await self._accounts.logout(principal)
            raise AuthenticationError("wrong_door", self._wrong_door)
        response.set_cookie(
            self.cookie,
            issued.token,
            httponly=True,
            samesite="strict",
            path="/",
            secure=request.url.scheme == "https",
        )
        response.delete_cookie(PRE_LOGIN_COOKIE, path="/")

    async def end(self, response: Response, user: WebUser) -> None:
        await self._accounts.logout(user.principal)
        response.delete_cookie(self.cookie, path="/")

    @property
    def _wrong_door(self) -> str:
        if self._customers:
            return "this is the customers' portal; staff log in to the console at /"
        return "this is the staff console; customers log in to the portal at /portal/"
