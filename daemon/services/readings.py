"""The readings export: readings as rows, shared by `meterd readings` and the API's CSV."""

from __future__ import annotations

from collections.abc import Sequence

from collectors import wire
from daemon.kernel.reading import Reading


def reading_table(readings: Sequence[Reading]) -> tuple[list[str], list[list[str]]]:
    """Readings as rows, one per meter value: what `meterd readings` and the API's CSV export show."""
    header = ["taken_at", "device", "vendor", "model", "meter", "value", "unit", "derived", "source", "reading_id"]
    rows = [
        [
            wire.format_time(r.taken_at_utc),
            r.device.key,
            r.device.vendor or "",
            r.device.model or "",
            m.meter.value,
            str(m.value),
            m.unit.value,
            "yes" if m.derived else "",
            r.source,
            r.id,
        ]
        for r in readings
        for m in r.meters
    ]
    return header, rows
