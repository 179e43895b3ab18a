"""Readings for tests, built the way collectors build them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from daemon.kernel.reading import DeviceInfo, Meter, MeterValue, Reading, Supply, Unit

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def reading(
    *,
    serial: str = "VNCRC48198",
    total: int = 15232,
    at: datetime = T0,
    minutes: int = 0,
    reading_id: str | None = None,
    source: str = "test",
    site: str = "acme-hq",
    address: str = "10.0.4.21",
    toner: int | None = 28,
) -> Reading:
    extra = {"id": reading_id} if reading_id else {}
    return Reading(
        site=site,
        taken_at=at + timedelta(minutes=minutes),
        device=DeviceInfo(key=serial, vendor="HP", model="LaserJet MFP M130nw", address=address),
        meters=(
            MeterValue(Meter.TOTAL, total),
            MeterValue(Meter.MONO, total),
            MeterValue(Meter.SCAN_TOTAL, 1190, Unit.IMAGES),
        ),
        supplies=(Supply("Black Cartridge HP CF217A", "toner", "black", toner),),
        source=source,
        **extra,
    )
