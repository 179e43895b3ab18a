"""Service: the devices' open faults and the service alerts they raised (issue 23). JSON pages or CSV."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from daemon.api.paging import Limit, Offset, Page, page
from daemon.api.routes_fleet import csv_response
from daemon.api.security import Context, requires
from daemon.services.accounts import Principal
from daemon.services.faults import FAULT_HEADER, fault_rows, faults
from daemon.storage.faults import FaultRecord

router = APIRouter()
ServiceReader = Annotated[Principal, requires("service.read")]
DeviceKey = Annotated[str | None, Query(max_length=128, description="device key: serial, mac:…, addr:…")]
Status = Annotated[Literal["open", "all"], Query(description="open: still going on; all: ended ones too")]
Format = Annotated[Literal["json", "csv"], Query(description="a JSON page, or every match as CSV")]


async def _listed(
    context: Context, *, status: str, alerts: bool, device: str | None, fmt: str, limit: int, offset: int
) -> Any:  # noqa: ANN401 - a Page of faults, or a CSV response
    found = await faults(
        context.store, open_only=status == "open", alerts_only=alerts, device=device, today=context.clock().date()
    )
    if fmt == "csv":
        return csv_response(FAULT_HEADER, fault_rows(found, context.clock()))
    return page(found, offset, limit)


@router.get(
    "/service/faults",
    tags=["service"],
    summary="device faults: error bits, standing printer alerts, a status other than running; newest first",
    response_model=Page[FaultRecord],
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def service_faults(
    *,
    _who: ServiceReader,
    context: Context,
    status: Status = "open",
    device: DeviceKey = None,
    format: Format = "json",  # noqa: A002 - the query word people type
    limit: Limit = 100,
    offset: Offset = 0,
) -> Any:  # noqa: ANN401 - a Page of faults, or a CSV response
    return await _listed(context, status=status, alerts=False, device=device, fmt=format, limit=limit, offset=offset)


@router.get(
    "/service/alerts",
    tags=["service"],
    summary="service alerts: faults open past service.alert_after_minutes, one per episode; a technician is needed",
    response_model=Page[FaultRecord],
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def service_alerts(
    *,
    _who: ServiceReader,
    context: Context,
    status: Status = "open",
    device: DeviceKey = None,
    format: Format = "json",  # noqa: A002 - the query word people type
    limit: Limit = 100,
    offset: Offset = 0,
) -> Any:  # noqa: ANN401 - a Page of faults, or a CSV response
    return await _listed(context, status=status, alerts=True, device=device, fmt=format, limit=limit, offset=offset)
