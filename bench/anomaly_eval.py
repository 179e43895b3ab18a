"""Detector evaluation on a labelled synthetic fleet: precision and recall per kind, and wall time.

    .venv/bin/python bench/anomaly_eval.py [--devices 2000] [--days 365] [--interval-min 15]

Each device prints on weekdays in office hours (its own volume, a summer and a December
dip, Poisson noise), 1% of readings are missing, a fifth of the devices sleep (no
readings) at night and on weekends. Injected, each into its own share of devices:
Counter32 wraps (counters started just below 2^32), resets (counter back to a few
hundred), swaps (another serial at the same address from some day on), spikes (one day
at 10-20x the device's usage), stale devices (silent for the last 3-10 days; a swapped-out
serial is stale too). The
detectors run over the whole year in chunks of devices, as the job would run over a
backlog; findings are matched to labels by kind, device and time.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from billing.anomalies import COUNTER32, DetectorSettings, Finding, Kind
from billing.anomalies.detectors import detect_all, stale, usual_silence

START = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday
EVALUATED = (Kind.WRAP, Kind.RESET, Kind.SWAP, Kind.SPIKE, Kind.STALE)


@dataclass(frozen=True)
class Label:
    kind: Kind
    device: str
    at: datetime  # the reading (or day) where it shows


def _device(n: int, days: int, step_min: int, rng: np.random.Generator) -> tuple[pd.DataFrame, list[Label]]:
    per_day = int(24 * 60 / step_min)
    stamps = START + pd.to_timedelta(np.arange(days * per_day) * step_min, unit="min")
    hours = stamps.hour + stamps.minute / 60
    weekday = stamps.day_of_week
    day_index = np.arange(days * per_day) // per_day
    volume = rng.lognormal(np.log(300), 0.8)
    season = 1 - 0.3 * ((stamps.month == 8) | ((stamps.month == 12) & (stamps.day > 20)))
    working = (weekday < 5) & (hours >= 8) & (hours < 18)
    rate = np.where(working, volume / (10 * 60 / step_min), 0.0) * season
    pages = rng.poisson(rate).astype("int64")
    labels: list[Label] = []
    device = f"D{n:05d}"
    kind = n % 10  # each injected kind in its own tenth of the fleet; the rest are clean
    if kind == 1:  # a spike: one day at 10-20x, on a weekday with history behind it
        day = int(rng.integers(40, days - 5))
        while (START + timedelta(days=day)).weekday() >= 5:
            day += 1
        on_day = day_index == day
        pages[on_day] = pages[on_day] * rng.integers(10, 21) + rng.poisson(rate[on_day] * 15)
        labels.append(Label(Kind.SPIKE, device, START + timedelta(days=day)))
    counter = np.cumsum(pages) + int(rng.integers(1_000, 2_000_000))
    serials = np.full(counter.shape, device, dtype=object)
    if kind == 2:  # Counter32: started just below 2^32, so it wraps during the year
        counter = counter - counter[0] + COUNTER32 - int(counter[-1] - counter[0]) // 2
        wrapped = counter >= COUNTER32
        first = int(np.argmax(wrapped))
        counter = counter % COUNTER32
        labels.append(Label(Kind.WRAP, device, stamps[first].to_pydatetime()))
    if kind == 3:
        at = int(rng.integers(len(counter) // 4, 3 * len(counter) // 4))
        counter[at:] = counter[at:] - counter[at] + int(rng.integers(0, 500))
        labels.append(Label(Kind.RESET, device, stamps[at].to_pydatetime()))
    if kind == 4:
        at = int(rng.integers(len(counter) // 4, 3 * len(counter) // 4))
        counter[at:] = counter[at:] - counter[at] + int(rng.integers(10_000, 900_000))
        serials[at:] = f"{device}-B"
        labels.append(Label(Kind.SWAP, f"{device}-B", stamps[at].to_pydatetime()))
        # The serial that was swapped out never reads again: it is stale too, rightly.
        labels.append(Label(Kind.STALE, device, stamps[at].to_pydatetime()))
    keep = rng.random(len(counter)) > 0.01
    if n % 5 == 0:  # sleeping devices: no readings outside office hours
        keep &= working | (rng.random(len(counter)) < 0.02)
    if kind == 5:
        silent_from = len(counter) - int(rng.integers(3, 11)) * per_day
        keep[silent_from:] = False
        labels.append(Label(Kind.STALE, device, stamps[silent_from].to_pydatetime()))
    frame = pd.DataFrame(
        {
            "device": serials[keep],
            "site": "fleet",
            "address": f"10.{n // 65536}.{(n // 256) % 256}.{n % 256}",
            "meter": "total",
            "unit": "impressions",
            "taken_at": stamps[keep],
            "value": counter[keep],
        }
    )
    frame["reading_id"] = [f"{device}-{i}" for i in range(len(frame))]
    return frame, labels


def _matches(finding: Finding, label: Label) -> bool:
    if finding.kind != label.kind or finding.device != label.device:
        return False
    if label.kind == Kind.SPIKE:
        return finding.window_start.date() == label.at.date()
    if label.kind == Kind.STALE:
        return True
    return finding.window_start < label.at <= finding.window_end


def main(devices: int, days: int, step_min: int, chunk: int) -> None:
    rng = np.random.default_rng(20261123)
    settings = DetectorSettings()
    findings: list[Finding] = []
    labels: list[Label] = []
    generated = detected = incremental = 0.0
    rows = 0
    now = START + timedelta(days=days)
    for first in range(0, devices, chunk):
        started = time.perf_counter()
        parts = [_device(n, days, step_min, rng) for n in range(first, min(devices, first + chunk))]
        frame = pd.concat([p[0] for p in parts], ignore_index=True)
        # As the engine's frames hold them: text columns as categories (factorised once).
        frame = frame.astype(dict.fromkeys(["device", "site", "address", "meter", "unit"], "category"))
        labels += [label for p in parts for label in p[1]]
        generated += time.perf_counter() - started
        rows += len(frame)
        started = time.perf_counter()
        findings += detect_all(frame, settings)
        last_seen = frame.groupby("device")["taken_at"].max()
        findings += stale(
            [(d, t.to_pydatetime()) for d, t in last_seen.items()], now=now, poll_interval_s=step_min * 60,
            settings=settings, usual=usual_silence(frame),
        )  # fmt: skip
        detected += time.perf_counter() - started
        # What a scheduled run reads when every device has new readings: its lookback only.
        window = frame[frame["taken_at"] >= pd.Timestamp(now) - pd.Timedelta(days=settings.spike_window_days + 2)]
        started = time.perf_counter()
        detect_all(window, settings)
        incremental += time.perf_counter() - started
    print(f"{devices} devices x {days} days at {step_min}-minute readings: {rows:,} readings")
    print(f"generation {generated:.1f} s (not counted); detection over the whole year {detected:.1f} s")
    lookback = settings.spike_window_days + 2
    print(f"incremental run, every device with new readings ({lookback}-day lookback each): {incremental:.1f} s")
    by_kind: dict[Kind, list[Finding]] = defaultdict(list)
    for finding in findings:
        if finding.meter in (None, "total"):
            by_kind[finding.kind].append(finding)
    for kind in EVALUATED:
        wanted = [label for label in labels if label.kind == kind]
        found = by_kind[kind]
        hits = sum(any(_matches(f, label) for f in found) for label in wanted)
        true = sum(any(_matches(f, label) for label in wanted) for f in found)
        precision = true / len(found) if found else 1.0
        recall = hits / len(wanted) if wanted else 1.0
        counts = f"labelled {len(wanted):5d}  found {len(found):5d}"
        print(f"{kind:<6} {counts}  precision {precision:.3f}  recall {recall:.3f}")
    others = {k: len(v) for k, v in by_kind.items() if k not in EVALUATED}
    print(f"other findings (not labelled here, all false on this fleet): {others or 'none'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--interval-min", type=int, default=15)
    parser.add_argument("--chunk", type=int, default=50, help="devices per detection batch")
    args = parser.parse_args()
    main(args.devices, args.days, args.interval_min, args.chunk)
