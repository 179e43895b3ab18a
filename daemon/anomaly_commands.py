"""`meterd anomalies list|show|ack|resolve`: the review queue for suspect readings."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from dataclasses import asdict
from datetime import timedelta
from typing import Any, Final

from collectors.base import DeviceInfo, Meter, MeterValue, Reading, Unit
from daemon.clock import utc_now
from daemon.command_support import default_user, open_store, print_rows
from daemon.errors import MeterdError
from daemon.metrics import Metrics
from daemon.pipeline import Pipeline
from daemon.settings import Settings
from daemon.storage.anomalies import ACKNOWLEDGED, RESOLVED, AnomalyRecord, AnomalyStore
from daemon.storage.repository import Store

ACTIONS: Final = {
    "approve": "approved",  # the readings are right as they are
    "reset": "reset",  # a counter reset: usage starts a new segment there
    "swap": "swap",  # another device: usage starts a new segment there
    "replace": "replaced",  # a manual reading replaces the suspect one, which stays out for good
    "dismiss": "dismissed",  # a false alarm
}


class ReviewError(MeterdError):
    """A review action that cannot be done as asked."""


def add_anomaly_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    anomalies = sub.add_parser("anomalies", help="review suspect readings").add_subparsers(metavar="ACTION")
    listing = anomalies.add_parser("list", parents=[common], help="anomalies, newest first")
    listing.add_argument(
        "--status", default="unresolved", choices=["unresolved", "open", ACKNOWLEDGED, RESOLVED, "all"]
    )
    listing.add_argument("--kind")
    listing.add_argument("--device", metavar="KEY")
    listing.add_argument("--format", choices=["table", "csv", "json"], default="table")
    listing.set_defaults(handler=cmd_list)
    show = anomalies.add_parser("show", parents=[common], help="one anomaly with its evidence")
    show.add_argument("id", type=int)
    show.set_defaults(handler=cmd_show)
    ack = anomalies.add_parser("ack", parents=[common], help="acknowledge: someone is looking at it")
    ack.add_argument("id", type=int)
    ack.add_argument("--reason", required=True)
    ack.add_argument("--by", default=default_user(), help="who (default: the login name)")
    ack.set_defaults(handler=cmd_ack)
    resolve = anomalies.add_parser("resolve", parents=[common], help="decide, with a reason; written to the audit log")
    resolve.add_argument("id", type=int)
    resolve.add_argument("--action", required=True, choices=sorted(ACTIONS))
    resolve.add_argument("--reason", required=True)
    resolve.add_argument("--value", type=int, help="with --action replace: the right counter value")
    resolve.add_argument("--by", default=default_user(), help="who (default: the login name)")
    resolve.set_defaults(handler=cmd_resolve)


async def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        status = None if args.status == "all" else args.status
        found = await AnomalyStore(store).find(status=status, kind=args.kind, device=args.device)
    if args.format == "json":
        json.dump([asdict(a) for a in found], sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return 0
    header = ["id", "kind", "severity", "device", "meter", "window", "status", "holds"]
    rows = [
        [
            str(a.id), a.kind, a.severity, a.device, a.meter,
            f"{a.window_start:%Y-%m-%d %H:%M} to {a.window_end:%Y-%m-%d %H:%M}",
            a.status if a.status != RESOLVED else f"resolved ({a.resolution})",
            "yes" if a.holds and a.status != RESOLVED else "",
        ]
        for a in found
    ]  # fmt: skip
    print_rows(args.format, header, rows, title=f"{len(found)} anomalies ({args.status})")
    return 0


async def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        anomaly = await AnomalyStore(store).get(args.id)
    json.dump(asdict(anomaly), sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    return 0


async def _unresolved(anomalies: AnomalyStore, anomaly_id: int) -> AnomalyRecord:
    """The anomaly, if a decision can still be taken on it.

    Raises:
        ReviewError: it is already resolved.
    """
    anomaly = await anomalies.get(anomaly_id)
    if anomaly.status == RESOLVED:
        raise ReviewError(f"anomaly {anomaly_id} is already resolved ({anomaly.resolution}) by {anomaly.resolved_by}")
    return anomaly


async def cmd_ack(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        anomalies = AnomalyStore(store)
        await _unresolved(anomalies, args.id)
        await anomalies.set_status(args.id, status=ACKNOWLEDGED, resolution=None, actor=args.by, reason=args.reason,
                                   now=utc_now())  # fmt: skip
    print(f"anomaly {args.id} acknowledged by {args.by}")
    return 0


async def cmd_resolve(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        anomalies = AnomalyStore(store)
        anomaly = await _unresolved(anomalies, args.id)
        detail: dict[str, Any] = {}
        if args.action == "replace":
            detail = await _replace(store, anomaly, args.value, actor=args.by)
        elif args.value is not None:
            raise ReviewError("--value goes with --action replace only")
        await anomalies.set_status(args.id, status=RESOLVED, resolution=ACTIONS[args.action], actor=args.by,
                                   reason=args.reason, now=utc_now(), detail=detail)  # fmt: skip
    print(f"anomaly {args.id} resolved: {ACTIONS[args.action]} by {args.by}")
    return 0


async def _replace(store: Store, anomaly: AnomalyRecord, value: int | None, *, actor: str) -> dict[str, Any]:
    """Store the manual reading that replaces the suspect one (just after it, so both are kept)."""
    if value is None:
        raise ReviewError("--action replace needs --value: the counter value the device should have shown")
    readings = await store.readings(
        device=anomaly.device, since=anomaly.window_end, until=anomaly.window_end + timedelta(seconds=1)
    )
    suspect = next((r for r in readings if r.id in anomaly.evidence.get("readings", [])), None)
    if suspect is None:
        raise ReviewError(f"the suspect reading of anomaly {anomaly.id} is not in the store")
    meter = Meter(anomaly.meter or "total")
    unit = next((m.unit for m in suspect.meters if m.meter == meter), Unit.IMPRESSIONS)
    manual = Reading(
        site=suspect.site,
        taken_at=suspect.taken_at + timedelta(seconds=1),
        device=DeviceInfo(
            key=suspect.device.key,
            vendor=suspect.device.vendor,
            model=suspect.device.model,
            address=suspect.device.address,
        ),
        meters=(MeterValue(meter, value, unit),),
        id=f"manual-{uuid.uuid4()}",
        source="manual",
    )
    await Pipeline(store, Metrics()).emit([manual])
    return {"replaced_reading": suspect.id, "manual_reading": manual.id, "value": value, "entered_by": actor}
