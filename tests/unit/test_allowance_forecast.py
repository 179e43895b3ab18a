"""Usage growing past the contract, worked by hand: used so far + recent rate x days left, against the allowance."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pandas as pd

from billing.anomalies import DetectorSettings, Finding, Kind
from billing.anomalies.allowance import allowances, forecast_requests, over_allowance
from billing.invoicing import Assignment, Book
from billing.reads import ReadRules, period_usage
from tests.unit.test_invoicing import book, contract

# 21 October, just after the 06:00 reads: 20 days of October counted, 10.75 days left until 1 November.
NOW = datetime(2026, 10, 21, 6, 0, tzinfo=UTC)
SETTINGS = DetectorSettings()
TERMS = [
    {"meter": "mono", "included": 1000, "tiers": [{"price": "0.01"}]},
    {"meter": "color", "included": 300, "tiers": [{"price": "0.08"}], "pool": "P"},
]


def reads(rates: dict[tuple[str, str], int], first: str = "2026-09-20", until: datetime = NOW) -> pd.DataFrame:
    """One read a day at 06:00 UTC per device x meter, growing by its daily rate, up to ``until``."""
    rows = []
    for (device, meter), per_day in rates.items():
        times = pd.date_range(pd.Timestamp(f"{first} 06:00", tz="UTC"), until, freq="D")
        rows += [(device, meter, at, 10_000 + per_day * n) for n, at in enumerate(times)]
    frame = pd.DataFrame(rows, columns=["device", "meter", "taken_at", "value"])
    return frame.assign(row_id=range(1, len(frame) + 1))


def forecast(ledger: Book, frame: pd.DataFrame, settings: DetectorSettings = SETTINGS) -> dict[tuple[str, str], dict]:  # type: ignore[type-arg]
    watched = allowances(ledger, NOW.date())
    requests = forecast_requests(watched, NOW, settings)
    usage = period_usage(frame, requests[["device", "meter", "start", "end"]], rules=ReadRules())
    found: list[Finding] = over_allowance(watched, requests.join(usage), NOW, settings)
    assert all(f.kind is Kind.OVER_ALLOWANCE for f in found)
    return {(f.device, str(f.meter)): f.evidence for f in found}


def fleet() -> Book:
    return book(
        Assignment("A", "ACME", date(2026, 1, 1), None),
        Assignment("B", "ACME", date(2026, 1, 1), None),
        Assignment("C", "ACME", date(2026, 10, 17), None),  # joins on the 17th: 15 of 31 days
        contracts=[contract(meters=TERMS)],
    )


RATES = {
    ("A", "mono"): 60,
    ("A", "color"): 40,
    ("B", "mono"): 35,
    ("B", "color"): 5,
    ("C", "mono"): 100,
    ("C", "color"): 0,
}


def test_forecast_is_used_plus_recent_rate_times_days_left_against_the_prorated_allowance() -> None:
    found = forecast(fleet(), reads(RATES))
    # A mono: used 1 Oct 06:00 .. 21 Oct 06:00 = 20 days x 60 = 1200; 60/day x 10.75 days = 645 -> 1845 > 1000 x 1.1.
    a = found["A", "mono"]
    assert (a["included"], a["used"], a["forecast"]) == (1000, 1200, 1845)
    assert a["devices"]["A"] == {"used": 1200, "per_day": 60.0, "days_left": 10.8, "estimated": False}
    # B mono: 20 x 35 = 700 + 35 x 10.75 = 376.25 -> 1076: over 1000 but within the 10 % margin (1100): silent.
    assert ("B", "mono") not in found
    # C mono: allowance 1000 x 15/31 = 483.9 -> 484; used 17 Oct 06:00 .. 21 Oct = 4 x 100 = 400; + 1075 = 1475.
    c = found["C", "mono"]
    assert (c["included"], c["used"], c["forecast"]) == (484, 400, 1475)
    # Colour is pooled: 300 + 300 + 300 x 15/31 (145) = 745; used 800 + 100 + 0 = 900;
    # + (40 + 5 + 0)/day x 10.75 = 483.75 -> 1384. Filed under the pool's first device.
    pool = found["A", "color"]
    assert (pool["pool"], pool["included"], pool["used"], pool["forecast"]) == ("P", 745, 900, 1384)
    assert sorted(pool["devices"]) == ["A", "B", "C"]
    assert "1,384 pages forecast by 2026-10-31 against 745 included" in pool["summary"]
    assert sorted(found) == [("A", "color"), ("A", "mono"), ("C", "mono")]


def test_the_margin_decides_the_borderline_case() -> None:
    found = forecast(fleet(), reads(RATES), replace(SETTINGS, allowance_margin=0.0))
    assert found["B", "mono"]["forecast"] == 1076  # now beyond 1000 x 1.0
    # 1076 is beyond 978 x 1.1 but not beyond 979 x 1.1: the limit is strict.
    assert ("B", "mono") in forecast(fleet(), reads(RATES), replace(SETTINGS, allowance_margin=1076 / 1000 - 1.0001))
    assert ("B", "mono") not in forecast(fleet(), reads(RATES), replace(SETTINGS, allowance_margin=0.076))


def test_a_quiet_fleet_and_a_contract_without_included_pages_are_silent() -> None:
    quiet = dict.fromkeys(RATES, 10)
    assert forecast(fleet(), reads(quiet)) == {}
    nothing_included = [{"meter": "mono", "tiers": [{"price": "0.01"}]}]
    ledger = book(Assignment("A", "ACME", date(2026, 1, 1), None), contracts=[contract(meters=nothing_included)])
    assert allowances(ledger, NOW.date()) == []
    assert forecast(ledger, reads({("A", "mono"): 5_000})) == {}


def test_a_device_too_new_for_a_rate_counts_what_it_used_only() -> None:
    ledger = book(Assignment("N", "ACME", date(2026, 10, 1), None), contracts=[contract(meters=TERMS[:1])])
    # Reads from 19 Oct 06:00 only: 2 days is below allowance_min_days (3), so no rate; 2 x 700 = 1400 used.
    found = forecast(ledger, reads({("N", "mono"): 700}, first="2026-10-19"))
    assert found["N", "mono"]["devices"]["N"]["per_day"] == 0.0
    assert found["N", "mono"]["forecast"] == 1400
    # With a rate it would forecast far more: the rule is what keeps two days from speaking for a month.
    assert forecast(ledger, reads({("N", "mono"): 700}, first="2026-10-19"), replace(SETTINGS, allowance_min_days=1))[
        "N", "mono"
    ]["forecast"] == 1400 + round(700 * 10.75)


def test_days_left_run_from_the_last_read_of_a_silent_device() -> None:
    ledger = book(Assignment("S", "ACME", date(2026, 1, 1), None), contracts=[contract(meters=TERMS[:1])])
    silent_since = datetime(2026, 10, 19, 6, 0, tzinfo=UTC)
    found = forecast(ledger, reads({("S", "mono"): 50}, until=silent_since))
    # Used to 19 Oct 06:00: 18 x 50 = 900; 12.75 days left from that read: 900 + 637.5 -> 1538 (not 900 + 537.5).
    assert found["S", "mono"]["used"] == 900
    assert found["S", "mono"]["forecast"] == 1538
