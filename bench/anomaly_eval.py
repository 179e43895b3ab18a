"""Detector evaluation on a labelled synthetic fleet: the review queue, precision and recall per kind, wall time.

    .venv/bin/python bench/anomaly_eval.py [--devices 2000] [--days 365] [--interval-min 15] [--reference REV]

Each device prints on weekdays in office hours at its own volume, with what dealers'
fleets do: a seasonal swing (+-10 % over the year), public holidays (single days off), a
Christmas week and two summer weeks at a tenth of the usual, and for a third of the fleet
a month-end rush (the last five working days of every month at 3x). Poisson noise, 1 % of
readings missing, a fifth of the devices sleep (no readings) at night and on weekends.
Injected, each into its own tenth of the fleet: Counter32 wraps (counters started just
below 2^32), resets (counter back to a few hundred), swaps (another serial at the same
address from some day on), spikes (one day at 20-50x the device's median), stale devices
(silent for the last 3-10 days; a swapped-out serial is stale too), and colour devices
(mono, colour and total meters, counters of 50,000 to 2,000,000 pages) counting colour
twice for 30 days (inconsistent); another tenth are colour devices whose total holds
pages the parts never did (a lifetime difference, not a fault).

The detectors run over the whole year in chunks of devices, as the job would over a
backlog, and their findings are grouped into episodes as the store keeps them: the queue.
An episode is matched to a label by kind, device and time. ``--reference REV`` also times
the detectors of git revision REV on the same frames in the same run (the machine is
shared: only figures measured side by side compare).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from billing.anomalies import COUNTER32, DetectorSettings, Kind
from billing.anomalies.detectors import detect_all, stale, usual_silence
from billing.anomalies.episodes import Episode, episodes, reading_moments

START = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday
EVALUATED = (Kind.WRAP, Kind.RESET, Kind.SWAP, Kind.SPIKE, Kind.STALE, Kind.INCONSISTENT)
TEXT = ["device", "site", "address", "meter", "unit"]
# Days off in the bench's year (2025): New Year, Easter Monday, Labour Day, Ascension, Whit Monday, …
PUBLIC_HOLIDAYS = {(1, 1), (4, 21), (5, 1), (5, 29), (6, 9), (10, 3), (11, 1), (12, 25), (12, 26)}
RUSH_DAYS = 5  # working days at the end of each month …
RUSH_FACTOR = 3.0  # … at this many times the usual
INCONSISTENT_DAYS = 30  # a colour device counting colour twice for this long


@dataclass(frozen=True)
class Label:
    kind: Kind
    device: str
    at: datetime  # the reading (or day) where it shows


@functools.cache
def _fleet_calendar(days: int, step_min: int) -> tuple[pd.DatetimeIndex, np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The year's readings' moments, the share printed then (season, public holidays, Christmas), the rush days.

    The same for every device: computed once.
    """
    per_day = int(24 * 60 / step_min)
    stamps = pd.DatetimeIndex(START + pd.to_timedelta(np.arange(days * per_day) * step_min, unit="min"))
    share = 1 + 0.1 * np.sin(2 * np.pi * (stamps.day_of_year.to_numpy() - 80) / 365)
    dates = pd.DatetimeIndex(stamps.normalize().unique())
    holiday = np.array([(d.month, d.day) in PUBLIC_HOLIDAYS for d in dates])
    day_index = np.arange(len(stamps)) // per_day
    share = np.where(holiday[day_index], 0.0, share)
    christmas = ((stamps.month == 12) & (stamps.day >= 24)) | ((stamps.month == 1) & (stamps.day <= 2))
    share = np.where(christmas, share * 0.1, share)
    working = dates[(dates.day_of_week < 5) & ~holiday]
    last = pd.Series(working).groupby([working.year, working.month]).tail(RUSH_DAYS)
    rush = dates.isin(pd.DatetimeIndex(last))[day_index]
    return stamps, share, rush


def _calendar(days: int, step_min: int, rng: np.random.Generator, *, rush: bool) -> np.ndarray[Any, Any]:
    """Per reading, the share of its usual volume the device prints then: season, holidays, month-end rush."""
    stamps, share, rush_days = _fleet_calendar(days, step_min)
    day_of_year = stamps.day_of_year.to_numpy()
    summer_start = int(rng.integers(182, 220))  # two weeks off somewhere in July or August
    summer = (day_of_year >= summer_start) & (day_of_year < summer_start + 14)
    share = np.where(summer, share * 0.1, share)
    return np.where(rush_days, share * RUSH_FACTOR, share) if rush else share


def _device(n: int, days: int, step_min: int, rng: np.random.Generator) -> tuple[pd.DataFrame, list[Label]]:  # noqa: PLR0915 - one fleet member, fault by fault
    per_day = int(24 * 60 / step_min)
    stamps = _fleet_calendar(days, step_min)[0]
    hours = stamps.hour + stamps.minute / 60
    weekday = stamps.day_of_week
    day_index = np.arange(days * per_day) // per_day
    volume = rng.lognormal(np.log(300), 0.8)
    working = (weekday < 5) & (hours >= 8) & (hours < 18)
    rate = np.where(working, volume / (10 * 60 / step_min), 0.0) * _calendar(days, step_min, rng, rush=n % 3 == 0)
    pages = rng.poisson(rate).astype("int64")
    labels: list[Label] = []
    device = f"D{n:05d}"
    kind = n % 10  # each injected kind in its own tenth of the fleet; the rest are clean
    if kind == 1:  # a spike: one day at 20-50x the median, on a working day with history behind it
        day = int(rng.integers(40, days - 5))
        while (START + timedelta(days=day)).weekday() >= 5 or rate[day_index == day].sum() == 0:
            day += 1
        on_day = day_index == day
        usual = float(np.median(np.bincount(day_index, weights=pages)[max(0, day - 28) : day]))
        spread = rate[on_day] / rate[on_day].sum()
        pages[on_day] = rng.poisson(spread * max(usual, volume) * rng.uniform(20, 50))
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
    meters = {"total": counter}
    if kind in (6, 7):
        meters |= _colour(
            counter,
            pages,
            rng,
            faulty=kind == 6,
            printing=rate > 0,
            per_day=per_day,
            labels=labels,
            device=device,
            stamps=stamps,
        )
    ids = np.array([f"{device}-{i}" for i in range(int(keep.sum()))], dtype=object)
    frame = pd.concat(
        [
            pd.DataFrame(
                {
                    "device": serials[keep],
                    "site": "fleet",
                    "address": f"10.{n // 65536}.{(n // 256) % 256}.{n % 256}",
                    "meter": meter,
                    "unit": "impressions",
                    "taken_at": stamps[keep],
                    "value": values[keep],
                    "reading_id": ids,
                }
            )
            for meter, values in meters.items()
        ],
        ignore_index=True,
    )
    return frame, labels


def _colour(
    counter: np.ndarray[Any, Any],
    pages: np.ndarray[Any, Any],
    rng: np.random.Generator,
    *,
    faulty: bool,
    printing: np.ndarray[Any, Any],
    per_day: int,
    labels: list[Label],
    device: str,
    stamps: pd.DatetimeIndex,
) -> dict[str, np.ndarray[Any, Any]]:
    """A colour device's meters (a fifth of the pages in colour): colour counted twice for a month if ``faulty``.

    A clean one's total holds pages the parts never did (a lifetime difference, not a fault).
    """
    color_pages = rng.binomial(pages, 0.2)
    color = np.cumsum(color_pages) + int(counter[0]) // 5
    meters = {"color": color, "mono": counter - color}
    if not faulty:
        meters["total"] = counter + int(rng.integers(100, 5_000))
        return meters
    at = int(rng.integers(len(counter) // 4, 3 * len(counter) // 4))
    while not printing[at]:  # from some hour the device prints in (not a holiday) on
        at += 1
    during = (np.arange(len(counter)) >= at) & (np.arange(len(counter)) < at + INCONSISTENT_DAYS * per_day)
    meters["color"] = color + np.cumsum(np.where(during, color_pages, 0))
    labels.append(Label(Kind.INCONSISTENT, device, stamps[at].to_pydatetime()))
    return meters


def _matches(episode: Episode, label: Label) -> bool:
    if episode.kind != label.kind or episode.device != label.device:
        return False
    if label.kind == Kind.SPIKE:
        return episode.window_start.date() == label.at.date()
    if label.kind == Kind.STALE:
        return True
    if label.kind == Kind.INCONSISTENT:  # within a day of the fault (a second item for it is a false one)
        return label.at <= episode.window_start <= label.at + timedelta(days=1)
    return episode.window_start < label.at <= episode.window_end


def _reference(revision: str) -> ModuleType:
    """The detectors module as it was at ``revision`` (git), loaded under a name of its own."""
    source = subprocess.run(
        ["git", "show", f"{revision}:billing/anomalies/detectors.py"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout
    path = Path(tempfile.mkdtemp()) / f"detectors_{revision}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"detectors_{revision}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(devices: int, days: int, step_min: int, chunk: int, reference: str | None) -> None:
    rng = np.random.default_rng(20261123)
    settings = DetectorSettings()
    queue: list[Episode] = []
    labels: list[Label] = []
    generated = detected = incremental = 0.0
    referenced: dict[str, float] = {"year": 0.0, "incremental": 0.0}
    earlier = _reference(reference) if reference else None
    rows = 0
    now = START + timedelta(days=days)
    lookback = max(settings.spike_window_days, settings.spike_history_days) + 2
    for first in range(0, devices, chunk):
        started = time.perf_counter()
        parts = [_device(n, days, step_min, rng) for n in range(first, min(devices, first + chunk))]
        # As the store hands them over: each device's meter series together, in time order.
        frame = pd.concat([p[0] for p in parts], ignore_index=True)
        frame = frame.sort_values(["device", "meter", "taken_at"], kind="stable", ignore_index=True)
        frame = frame.astype(dict.fromkeys(TEXT, "category"))  # text factorised once, as the engine's frames
        labels += [label for p in parts for label in p[1]]
        # What a scheduled run reads when every device has new readings: its lookback only.
        window = frame[frame["taken_at"] >= pd.Timestamp(now) - pd.Timedelta(days=lookback)].reset_index(drop=True)
        generated += time.perf_counter() - started
        rows += len(frame)
        started = time.perf_counter()
        findings = detect_all(frame, settings)
        last_seen = frame.groupby("device", observed=True)["taken_at"].max()
        findings += stale(
            [(d, t.to_pydatetime()) for d, t in last_seen.items()],
            now=now,
            poll_interval_s=step_min * 60,
            settings=settings,
            usual=usual_silence(frame),
        )
        queue += episodes(findings, reading_moments(frame))
        detected += time.perf_counter() - started
        started = time.perf_counter()
        episodes(detect_all(window, settings), reading_moments(window))
        incremental += time.perf_counter() - started
        if earlier is not None:
            started = time.perf_counter()
            earlier.detect_all(frame, settings)
            referenced["year"] += time.perf_counter() - started
            started = time.perf_counter()
            earlier.detect_all(window, settings)
            referenced["incremental"] += time.perf_counter() - started
    print(f"{devices} devices x {days} days at {step_min}-minute readings: {rows:,} meter readings")
    print(f"generation {generated:.1f} s (not counted); detection over the whole year {detected:.1f} s")
    print(f"incremental run, every device with new readings ({lookback}-day lookback each): {incremental:.1f} s")
    if earlier is not None:
        print(
            f"reference {reference}, same frames, same run: whole year {referenced['year']:.1f} s, "
            f"incremental {referenced['incremental']:.1f} s (its detectors only, no episodes)"
        )
    _report(queue, labels)


def _report(queue: list[Episode], labels: list[Label]) -> None:
    """The queue against the labelled problems: its size, and precision and recall per kind."""
    items = [e for e in queue if e.meter in (None, "total") and e.kind != Kind.LEVEL_SHIFT]
    by_kind: dict[Kind, list[Episode]] = defaultdict(list)
    for episode in items:
        by_kind[episode.kind].append(episode)
    false = sum(not any(_matches(e, label) for label in labels) for e in items)
    problems = len({(label.kind, label.device, label.at) for label in labels}) + false
    holding = sum(e.holds for e in items)
    print(
        f"queue {len(items)} items ({holding} holding readings) for {problems} distinct device x kind episodes "
        f"({len(labels)} labelled, {false} false): {len(items) / max(problems, 1):.2f} per episode"
    )
    for kind in EVALUATED:
        wanted = [label for label in labels if label.kind == kind]
        found = by_kind[kind]
        hits = sum(any(_matches(e, label) for e in found) for label in wanted)
        true = sum(any(_matches(e, label) for label in wanted) for e in found)
        precision = true / len(found) if found else 1.0
        recall = hits / len(wanted) if wanted else 1.0
        counts = f"labelled {len(wanted):5d}  items {len(found):5d}"
        print(f"{kind:<12} {counts}  precision {precision:.3f}  recall {recall:.3f}")
    others = {k: len(v) for k, v in by_kind.items() if k not in EVALUATED}
    print(f"other items (not labelled here, all false on this fleet): {others or 'none'}")
    shifts = sum(e.kind == Kind.LEVEL_SHIFT for e in queue)
    print(f"level shifts (informational, hold nothing; busy spells the device had not had before): {shifts}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--interval-min", type=int, default=15)
    parser.add_argument("--chunk", type=int, default=100, help="devices per detection batch")
    parser.add_argument("--reference", metavar="REV", help="also time this git revision's detectors")
    args = parser.parse_args()
    main(args.devices, args.days, args.interval_min, args.chunk, args.reference)
