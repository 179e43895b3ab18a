"""One error body for every failure: ``{"error": {"code", "message", "field"}}``, and the status of each error kind."""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from billing.contracts import ContractError
from billing.customers import CustomerError
from billing.exchange import ExchangeError
from billing.invoicing import BillingError
from billing.lifecycle import InvoiceStateError
from billing.periods import PeriodError
from daemon.api.expensive import RateLimitedError
from daemon.kernel.errors import MeterdError, StorageError
from daemon.security.passwords import PasswordPolicyError
from daemon.services.accounts import AccountError, AuthenticationError, UserExistsError, UserNotFoundError
from daemon.services.exchange import RowProblemsError
from daemon.services.portal import DeviceNotFoundError, PortalError
from daemon.services.review import ReviewError
from daemon.storage.anomalies import AnomalyNotFoundError
from daemon.storage.billing import CustomerNotFoundError, InvoiceNotFoundError
from daemon.storage.portal import ChangeRequestDecidedError, ChangeRequestNotFoundError


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class PermissionDeniedError(MeterdError):
    """The caller's role does not hold the permission the route needs."""


ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    status: {"model": ErrorBody} for status in (400, 401, 403, 404, 409, 422, 429, 503)
}
# Most specific first: the first class an error is an instance of gives its status and code.
_STATUS: Final[list[tuple[type[MeterdError], int, str]]] = [
    (PermissionDeniedError, 403, "forbidden"),
    (RateLimitedError, 429, "rate_limited"),
    (UserNotFoundError, 404, "not_found"),
    (AnomalyNotFoundError, 404, "not_found"),
    (InvoiceNotFoundError, 404, "not_found"),
    (CustomerNotFoundError, 404, "not_found"),
    (DeviceNotFoundError, 404, "not_found"),
    (ChangeRequestNotFoundError, 404, "not_found"),
    (ChangeRequestDecidedError, 409, "conflict"),
    (UserExistsError, 409, "exists"),
    (InvoiceStateError, 409, "conflict"),
    (ReviewError, 409, "conflict"),
    (PasswordPolicyError, 422, "weak_password"),
    (RowProblemsError, 422, "invalid_rows"),
    (ExchangeError, 422, "unreadable_file"),
    (AccountError, 422, "invalid"),
    (ContractError, 422, "invalid"),
    (CustomerError, 422, "invalid"),
    (PeriodError, 422, "invalid"),
    (BillingError, 422, "refused"),
    (PortalError, 422, "refused"),
    (StorageError, 503, "store_unavailable"),
]
_FIELDS: Final[dict[type[MeterdError], str]] = {PasswordPolicyError: "password", PeriodError: "period"}


def body(status: int, code: str, message: str, field: str | None = None, **headers: str) -> JSONResponse:
    content = ErrorBody(error=ErrorDetail(code=code, message=message, field=field)).model_dump()
    return JSONResponse(content, status_code=status, headers=headers or None)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AuthenticationError)
    async def _authentication(_: Request, err: AuthenticationError) -> JSONResponse:
        if err.code in {"locked", "too_many_failures"}:
            return body(429, err.code, str(err))
        return body(401, err.code, str(err), **{"WWW-Authenticate": "Bearer"})

    @app.exception_handler(MeterdError)
    async def _meterd(_: Request, err: MeterdError) -> JSONResponse:
        for kind, status, code in _STATUS:
            if isinstance(err, kind):
                return body(status, code, str(err), _FIELDS.get(kind))
        return body(400, "refused", str(err))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0]
        where = [str(part) for part in first.get("loc", ()) if part not in {"body", "query", "path", "header"}]
        return body(422, "invalid", str(first.get("msg", "invalid input")), ".".join(where) or None)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, err: HTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        return body(err.status_code, codes.get(err.status_code, "error"), str(err.detail))
