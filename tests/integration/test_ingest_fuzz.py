"""Fuzzing the ingest path end to end: any bytes either become a stored reading or a dead letter."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.services.metrics import Metrics
from daemon.services.pipeline import Pipeline
from daemon.storage.repository import Store

VALID = {
    "schema": "meterd.reading/1",
    "id": "fuzz-1",
    "site": "acme-hq",
    "taken_at": "2026-11-22T10:00:00Z",
    "device": {"serial": "VNCRC48198"},
    "meters": [{"meter": "total", "value": 15232, "unit": "impressions"}],
}
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as loop_runner:
        yield loop_runner


@pytest.fixture(scope="module")
def pipeline(runner: asyncio.Runner, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pipeline, Store]]:
    path: Path = tmp_path_factory.mktemp("fuzz") / "meterd.db"
    context = Store.open(f"sqlite:///{path}")
    store = runner.run(context.__aenter__())
    yield Pipeline(store, Metrics()), store
    runner.run(context.__aexit__(None, None, None))


def _accounted_for(runner: asyncio.Runner, pipeline: tuple[Pipeline, Store], raw: bytes) -> None:
    sink, store = pipeline
    before = sum(letter.repeats for letter in runner.run(store.dead_letters(limit=100_000)))
    outcome = runner.run(sink.ingest(raw, origin="meterd/v1/acme-hq/fuzz/reading", source="mqtt"))
    letters = runner.run(store.dead_letters(limit=100_000))
    # Every rejection is one delivery of one dead letter (the same bytes again are a repeat of its row).
    if outcome is None:
        assert sum(letter.repeats for letter in letters) == before + 1
        assert raw in {letter.raw for letter in letters}
    else:
        assert sum(letter.repeats for letter in letters) == before
        assert outcome.stored + outcome.duplicates == 1


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_are_stored_or_dead_lettered(
    runner: asyncio.Runner, pipeline: tuple[Pipeline, Store], raw: bytes
) -> None:
    _accounted_for(runner, pipeline, raw)


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(sorted(VALID)), _json, st.integers(0, 10**6))
def test_mutated_readings_are_stored_or_dead_lettered(
    runner: asyncio.Runner, pipeline: tuple[Pipeline, Store], field: str, value: object, salt: int
) -> None:
    mutated = {**VALID, "id": f"fuzz-{salt}", field: value}
    _accounted_for(runner, pipeline, json.dumps(mutated).encode())
