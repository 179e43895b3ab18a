"""Devices, their readings (JSON or CSV), their supplies' forecasts and replenishment list, the anomaly queue."""

from __future__ import annotations

import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, Field

from billing.cells import write_rows
from collectors import wire
from collectors.wire import WireReading
from daemon.api.paging import Limit, Offset, Page, page
from daemon.api.security import Context, requires
from daemon.services.accounts import Principal
from daemon.services.readings import reading_table
from daemon.services.review import ACTIONS, QueueItem, acknowledge, acknowledge_kind, resolve, review_queue
from daemon.services.supplies import (
    REPLENISHMENT_HEADER,
    ReplenishmentFilter,
    replenishment_list,
    replenishment_rows,
    supply_policy,
)
from daemon.storage.anomalies import AnomalyRecord, AnomalyStore
from daemon.storage.repository import DeviceRecord
from daemon.storage.supplies import SupplyStatus, SupplyStore

router = APIRouter()
DeviceReader = Annotated[Principal, requires("devices.read")]
AnomalyReader = Annotated[Principal, requires("anomalies.read")]
Reviewer = Annotated[Principal, requires("anomalies.review")]
Id = Annotated[int, Path(ge=1, le=2**62)]


@router.get("/devices", tags=["devices"])
async def devices(
    _who: DeviceReader,
    context: Context,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[DeviceRecord]:
    return page(await context.store.devices(), offset, limit)


@router.get(
    "/readings",
    tags=["devices"],
    summary="stored readings in reading-v1 form, or as CSV (one row per meter value)",
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def readings(
    *,
    _who: DeviceReader,
    context: Context,
    device: Annotated[str | None, Query(max_length=128, description="device key: serial, mac:…, addr:…")] = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    format: Literal["json", "csv"] = "json",  # noqa: A002 - the query word people type
    limit: Limit = 100,
    offset: Offset = 0,
) -> Any:  # noqa: ANN401 - a Page of readings, or a CSV response
    found = await context.store.readings(device=device, since=since, until=until)
    chosen = page(found, offset, limit)
    if format == "csv":
        return csv_response(*reading_table(chosen.items), next_offset=chosen.next_offset)
    items = [WireReading.model_validate(wire.encode(r)) for r in chosen.items]
    return Page[WireReading](items=items, offset=offset, limit=limit, next_offset=chosen.next_offset)


def csv_response(header: list[str], rows: list[list[str]], *, next_offset: int | None = None) -> Response:
    text = io.StringIO()
    write_rows(text, header, rows)  # cells a spreadsheet would run as formulas open as text
    return Response(
        text.getvalue(), media_type="text/csv; charset=utf-8", headers={"X-Next-Offset": str(next_offset or "")}
    )


@router.get("/supplies", tags=["devices"], summary="every supply: level, expected empty date ± days, due or not")
async def supplies(
    *,
    _who: DeviceReader,
    context: Context,
    device: Annotated[str | None, Query(max_length=128, description="device key: serial, mac:…, addr:…")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[SupplyStatus]:
    found = await SupplyStore(context.store).report(supply_policy(context.settings), context.clock())
    return page([s for s in found if device is None or s.device == device], offset, limit)


@router.get(
    "/supplies/replenishment",
    tags=["devices"],
    summary="the cartridges to ship: due now, or with an alert still open (one per cartridge until replaced)",
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def replenishment(
    *,
    _who: DeviceReader,
    context: Context,
    format: Literal["json", "csv"] = "json",  # noqa: A002 - the query word
    customer: Annotated[str | None, Query(max_length=64, description="a customer's code")] = None,
    site: Annotated[str | None, Query(max_length=64)] = None,
    within_days: Annotated[
        int | None, Query(ge=0, le=365, description="every cartridge expected empty within N days, due or not")
    ] = None,
) -> Any:  # noqa: ANN401 - a list of rows, or a CSV response
    wanted = ReplenishmentFilter(customer=customer, site=site, within_days=within_days)
    rows = replenishment_rows(await replenishment_list(context.store, context.settings, context.clock(), wanted))
    if format == "csv":
        return csv_response(REPLENISHMENT_HEADER, rows)
    return [dict(zip(REPLENISHMENT_HEADER, row, strict=True)) for row in rows]


@router.get("/anomalies", tags=["anomalies"])
async def anomalies(
    *,
    _who: AnomalyReader,
    context: Context,
    status: Literal["unresolved", "open", "acknowledged", "resolved", "all"] = "unresolved",
    kind: Annotated[str | None, Query(max_length=32)] = None,
    device: Annotated[str | None, Query(max_length=128)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[AnomalyRecord]:
    found = await AnomalyStore(context.store).find(
        status=None if status == "all" else status, kind=kind, device=device, limit=offset + limit + 1
    )
    return page(found, offset, limit)


@router.get("/anomalies/queue", tags=["anomalies"], summary="unresolved, by customer and device, most money first")
async def anomaly_queue(
    *,
    _who: AnomalyReader,
    context: Context,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    device: Annotated[str | None, Query(max_length=128)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[QueueItem]:
    return page(await review_queue(context.store, kind=kind, device=device), offset, limit)


class KindOnDevice(BaseModel):
    device: str = Field(min_length=1, max_length=128)
    kind: str = Field(min_length=1, max_length=32)
    reason: str = Field(min_length=1, max_length=2000)


@router.post("/anomalies/ack", tags=["anomalies"], summary="acknowledge every open one of a kind on a device")
async def ack_kind(body: KindOnDevice, who: Reviewer, context: Context) -> list[AnomalyRecord]:
    return await acknowledge_kind(
        context.store, body.device, body.kind, actor=who.login, reason=body.reason, now=context.clock()
    )


@router.get("/anomalies/{anomaly_id}/readings", tags=["anomalies"], summary="the readings around the episode")
async def anomaly_readings(anomaly_id: Id, _who: AnomalyReader, context: Context) -> list[dict[str, Any]]:
    anomalies = AnomalyStore(context.store)
    return await anomalies.readings_around(await anomalies.get(anomaly_id))


@router.get("/anomalies/{anomaly_id}", tags=["anomalies"])
async def anomaly(
    anomaly_id: Id,
    _who: AnomalyReader,
    context: Context,
) -> AnomalyRecord:
    return await AnomalyStore(context.store).get(anomaly_id)


class Acknowledgement(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class Decision(BaseModel):
    action: Literal[tuple(ACTIONS)]  # type: ignore[valid-type] # the actions are data in daemon.services.review
    reason: str = Field(min_length=1, max_length=2000)
    value: int | None = Field(
        default=None,
        ge=0,
        le=2**63 - 1,
        description="replace: the counter value; reset: the value it restarted from (default 0)",
    )


@router.post("/anomalies/{anomaly_id}/ack", tags=["anomalies"], summary="someone is looking at it")
async def ack(anomaly_id: Id, body: Acknowledgement, who: Reviewer, context: Context) -> AnomalyRecord:
    return await acknowledge(context.store, anomaly_id, actor=who.login, reason=body.reason, now=context.clock())


@router.post("/anomalies/{anomaly_id}/resolve", tags=["anomalies"], summary="decide: approve, reset, swap, replace …")
async def decide(anomaly_id: Id, body: Decision, who: Reviewer, context: Context) -> AnomalyRecord:
    return await resolve(
        context.store,
        anomaly_id,
        action=body.action,
        value=body.value,
        actor=who.login,
        reason=body.reason,
        now=context.clock(),
    )
