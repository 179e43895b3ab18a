"""Supply forecast evaluation on labelled synthetic cartridge histories (issue 23).

    .venv/bin/python bench/supplies_eval.py [--devices 400] [--days 150] [--seed 23]

Each device prints on weekdays (its own volume, a tenth of it on weekends, Poisson days),
with its own coverage: a cartridge's true level falls by a percent per page drawn per device
(sized to its volume: 30 to 120 days a cartridge). A cartridge is replaced at empty (0 to 2 days after the
true level reaches 0), early (a fifth of them, at 5 to 25 % left: never empty, so not in
the ±3-day score) or refilled (a tenth, near empty, to 50 to 80 %). Half the devices report
levels in 10 % steps (rounded), the rest in 1 % steps; a tenth report no level at all
(unknown / "some remaining", NULL). Polls are hourly; what the store keeps (changes and a
daily heartbeat) is what the functions see, with the device's page counter.

Printed: at 14 days before each true empty, the share of forecasts within ±3 days; the
recall of replenishment alerts raised at least ``lead_days`` before empty (the alert is
checked once a day, one open alert per cartridge until its replacement is seen); alerts per
cartridge; replacement detection recall and precision (match within a day).
"""

from __future__ import annotations

import argparse
import sys
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from billing.supplies import Level, PageCounter, cartridges, forecast, replenishment_due

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
LEAD_DAYS = 10
LOW_PERCENT = 5
HEARTBEAT = timedelta(days=1)


@dataclass
class Truth:
    installed_at: datetime  # a replacement's time (None for the history's first cartridge: see ``first``)
    first: bool
    empty_at: datetime | None = None  # when the true level reached 0, if it did
    replaced_at: datetime | None = None


@dataclass
class Device:
    name: str
    step: int | None  # reporting step in percent; None: never reports a level
    levels: list[Level] = field(default_factory=list)  # as stored: changes plus a daily heartbeat
    counter: list[tuple[datetime, int]] = field(default_factory=list)
    truth: list[Truth] = field(default_factory=list)


def _device(n: int, days: int, rng: np.random.Generator) -> Device:
    roll = rng.random()
    step = None if roll < 0.1 else (10 if roll < 0.55 else 1)
    device = Device(f"D{n:04d}", step)
    weekday_pages = rng.lognormal(np.log(120), 0.6)
    # Coverage and cartridge size vary by device; a dealer fits cartridges to volume, so one lasts 30 to 120 days.
    per_page = 100 / (weekday_pages * (5.1 / 7) * rng.uniform(30, 120))
    true_level = rng.uniform(30, 100)  # the history starts mid-cartridge
    device.truth.append(Truth(START, first=True))
    total, stored_at, stored_level = int(rng.integers(10_000, 200_000)), None, None
    pending_replacement: datetime | None = None
    for hour in range(days * 24):
        at = START + timedelta(hours=hour)
        if at.hour == 0:  # a day's plan
            base = weekday_pages if at.weekday() < 5 else weekday_pages / 10
            day_pages = rng.poisson(base * rng.uniform(0.6, 1.4))
        working = 8 <= at.hour < 18
        pages = int(rng.binomial(day_pages, 0.1)) if working else 0
        total += pages
        if true_level > 0:
            true_level -= pages * per_page
            if true_level <= 0:
                true_level = 0.0
                device.truth[-1].empty_at = at
                pending_replacement = at + timedelta(hours=float(rng.uniform(2, 48)))
        current = device.truth[-1]
        early = rng.random() < 0.2 / 24 / 3 and 5 <= true_level <= 25 and current.replaced_at is None
        if early or (pending_replacement is not None and at >= pending_replacement):
            refill = not early and rng.random() < 0.1
            current.replaced_at = at
            true_level = rng.uniform(50, 80) if refill else 100.0
            device.truth.append(Truth(at, first=False))
            pending_replacement = None
        device.counter.append((at, total))
        reported = None if step is None else int(min(100, max(0, round(true_level / step) * step)))
        if stored_at is None or reported != stored_level or at - stored_at >= HEARTBEAT:
            device.levels.append(Level(at, reported))
            stored_at, stored_level = at, reported
    return device


@dataclass
class Score:
    within: int = 0
    scored: int = 0
    alerted_in_time: int = 0
    ran_empty: int = 0
    alerts: int = 0
    cartridges: int = 0
    found: int = 0
    true_replacements: int = 0
    detected: int = 0
    correct_detections: int = 0
    errors: list[float] = field(default_factory=list)
    notice_days: list[float] = field(default_factory=list)  # alert to true empty, for the cartridges that ran empty


def _history_until(device: Device, moment: datetime) -> tuple[list[Level], PageCounter]:
    levels = device.levels[: bisect_right([level.at for level in device.levels], moment)]
    counter = device.counter[: bisect_right([at for at, _ in device.counter], moment)]
    return levels, PageCounter(counter[::6] + counter[-1:])  # the counter every 6 hours and its latest


def _score_device(device: Device, days: int, score: Score) -> None:
    if device.step is None:
        return  # no level, no forecast: listed as such, not scored
    _score_replacements(device, score)
    _score_forecasts(device, score)
    _score_alerts(device, days, score)


def _score_replacements(device: Device, score: Score) -> None:
    detected = [c.installed_at for c in cartridges(device.levels) if c.replaced]
    true = [t.installed_at for t in device.truth if not t.first]
    score.true_replacements += len(true)
    score.found += sum(any(abs(d - t) <= timedelta(days=1) for d in detected) for t in true)
    score.detected += len(detected)
    score.correct_detections += sum(any(abs(d - t) <= timedelta(days=1) for t in true) for d in detected)


def _score_forecasts(device: Device, score: Score) -> None:
    for truth in device.truth:
        moment = truth.empty_at - timedelta(days=14) if truth.empty_at is not None else START
        if moment > max(START + timedelta(days=28), truth.installed_at):
            levels, counter = _history_until(device, moment)
            history = cartridges(levels)
            result = forecast(history[-1], counter, moment, previous=history[-2] if len(history) > 1 else None)
            score.scored += 1
            if result.empty_on is not None:
                error = (result.empty_on - truth.empty_at.date()).days
                score.errors.append(error)
                score.within += abs(error) <= 3


def _score_alerts(device: Device, days: int, score: Score) -> None:
    """Alerts checked daily at 07:00, one open alert per (detected) cartridge until its replacement is seen."""
    end = START + timedelta(days=days)
    # Alerts: checked daily at 07:00, one open alert per (detected) cartridge until its replacement is seen.
    open_for: set[datetime] = set()
    raised: dict[datetime, datetime] = {}  # the cartridge's installed_at (as detected) -> first alert
    day = START + timedelta(days=28, hours=7)  # four weeks of history before the first check
    while day < end:
        levels, counter = _history_until(device, day)
        history = cartridges(levels)
        current = history[-1]
        if current.installed_at not in open_for:
            result = forecast(current, counter, day, previous=history[-2] if len(history) > 1 else None)
            if replenishment_due(result, day.date(), lead_days=LEAD_DAYS, low_percent=LOW_PERCENT):
                open_for.add(current.installed_at)
                raised[current.installed_at] = day
                score.alerts += 1
        day += timedelta(days=1)
    checked_from = START + timedelta(days=28)
    for truth in device.truth:
        if truth.installed_at + timedelta(days=1) >= end or (truth.replaced_at and truth.replaced_at < checked_from):
            continue
        score.cartridges += 1
        if truth.empty_at is None or truth.empty_at - timedelta(days=LEAD_DAYS) < checked_from:
            continue  # never empty, or empty before the checks could have warned in time
        score.ran_empty += 1
        alert = next((at for key, at in raised.items() if abs(key - truth.installed_at) <= timedelta(days=1)), None)
        if truth.first and alert is None:
            alert = raised.get(START)
        if alert is not None:
            score.notice_days.append((truth.empty_at - alert).total_seconds() / 86_400)
        if alert is not None and alert <= truth.empty_at - timedelta(days=LEAD_DAYS):
            score.alerted_in_time += 1


def main(options: argparse.Namespace) -> None:
    rng = np.random.default_rng(options.seed)
    started = time.perf_counter()
    devices = [_device(n, options.days, rng) for n in range(options.devices)]
    score = Score()
    for device in devices:
        _score_device(device, options.days, score)
    elapsed = time.perf_counter() - started
    unknown = sum(d.step is None for d in devices)
    errors = np.array(score.errors)
    print(
        f"{options.devices} devices ({unknown} report no level), {options.days} days, seed {options.seed}, "
        f"{elapsed:.0f} s"
    )
    print("| measure | value | target |\n|---|---|---|")
    print(
        f"| forecasts within ±3 days at 14 days before empty | {score.within / score.scored:.3f} "
        f"({score.within}/{score.scored}) | ≥ 0.85 |"
    )
    print(
        f"| median / 90th-percentile absolute error, days | {np.median(np.abs(errors)):.1f} / "
        f"{np.percentile(np.abs(errors), 90):.1f} | |"
    )
    print(
        f"| alerts raised ≥ {LEAD_DAYS} days before empty (recall) | "
        f"{score.alerted_in_time / score.ran_empty:.3f} ({score.alerted_in_time}/{score.ran_empty}) | 1.0 |"
    )
    print(
        f"| notice: alert to empty, median / 10th percentile, days | {np.median(score.notice_days):.1f} / "
        f"{np.percentile(score.notice_days, 10):.1f} | ≥ {LEAD_DAYS} |"
    )
    print(f"| alerts per cartridge | {score.alerts / score.cartridges:.3f} ({score.alerts}/{score.cartridges}) | ≤ 1 |")
    print(
        f"| replacement detection recall | {score.found / score.true_replacements:.3f} "
        f"({score.found}/{score.true_replacements}) | 1.0 |"
    )
    print(
        f"| replacement detection precision | {score.correct_detections / score.detected:.3f} "
        f"({score.correct_detections}/{score.detected}) | ≥ 0.99 |"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=400)
    parser.add_argument("--days", type=int, default=150)
    parser.add_argument("--seed", type=int, default=23)
    main(parser.parse_args())
