"""The usage report's chart: a real PNG of the lines it was given."""

from __future__ import annotations

import struct

import pandas as pd

from billing.documents.reports import usage_chart


def _daily(devices: list[str]) -> pd.DataFrame:
    days = pd.to_datetime(["2026-10-01", "2026-10-02", "2026-10-03"])
    return pd.DataFrame(
        [
            {"day": day, "device": device, "meter": "mono", "pages": 10 * n + i}
            for n, device in enumerate(devices)
            for i, day in enumerate(days)
        ]
    )


def test_the_chart_is_a_png_of_report_size() -> None:
    png = usage_chart(_daily(["KY1"]), "ACME: pages per day")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert 600 < width < 1000
    assert 250 < height < 450


def test_another_device_draws_another_chart() -> None:
    assert usage_chart(_daily(["KY1"]), "t") != usage_chart(_daily(["KY1", "KY2"]), "t")
