"""Who is calling, and may they: the bearer token to a Principal, and one guard per route naming its permission.

Every route but login depends on exactly one :class:`Guard`; the RBAC test walks the
routes, finds each one's guard and checks every role against PERMISSIONS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from daemon.api.errors import PermissionDeniedError
from daemon.api.expensive import Expensive
from daemon.kernel.clock import Clock
from daemon.security.roles import PERMISSIONS, allowed
from daemon.services.accounts import Accounts, AuthenticationError, Principal
from daemon.settings import Settings
from daemon.storage.audit import audit_source
from daemon.storage.repository import Store

_bearer = HTTPBearer(auto_error=False, description="a session token (POST /api/v1/auth/login) or an API token")


@dataclass(frozen=True, slots=True)
class ApiContext:
    settings: Settings
    store: Store
    accounts: Accounts
    clock: Clock
    expensive: Expensive = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "expensive", Expensive(self.settings.api.expensive_per_minute))


def api_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


Context = Annotated[ApiContext, Depends(api_context)]


async def caller(
    context: Context,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        msg = "log in first (POST /api/v1/auth/login) and send the token as Authorization: Bearer TOKEN"
        raise AuthenticationError("not_authenticated", msg)
    return await context.accounts.authenticate(credentials.credentials)


async def record_source(request: Request) -> None:
    """Audit entries written while serving this request (logins too) say where it came from."""
    audit_source.set(f"api {request.client.host if request.client else 'unknown'}")


class Guard:
    """A route's one permission; 403 for a role without it."""

    def __init__(self, permission: str) -> None:
        if permission not in PERMISSIONS:
            msg = f"no permission {permission!r} in daemon/security/roles.py"
            raise ValueError(msg)
        self.permission = permission

    async def __call__(self, principal: Annotated[Principal, Depends(caller)]) -> Principal:
        if not allowed(principal.role, self.permission):
            msg = f"a {principal.role} may not do this ({self.permission}); ask an admin"
            raise PermissionDeniedError(msg)
        return principal


def requires(permission: str) -> Any:  # noqa: ANN401 - a FastAPI dependency marker
    """A route's guard, as a parameter: ``who: Annotated[Principal, requires("invoices.write")]``."""  # noqa: D402
    return Depends(Guard(permission))
