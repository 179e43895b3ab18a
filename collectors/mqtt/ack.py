"""End-to-end acknowledgement: an agent's outbox rows leave only when the hub has committed them.

The broker's PUBACK says the broker has a message, not that a hub stored it: a hub away
longer than its session expiry loses what the broker queued for it. So each forwarded
message carries its outbox position (user properties: the agent's outbox ``epoch``, the
entry's ``seq`` and the ``prev`` entry sent before it in the same pass, 0 for a pass's
first). The hub, after committing a batch, publishes per site the highest ``seq`` up to
which it has committed every entry (retained, on ``meterd/v1/<site>/ack``); the agent
deletes its rows up to there. A hub that starts a session says so with a new ``hub`` id
in that message, and the agent sends again everything not yet confirmed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final, Protocol

from collectors.mqtt.connection import TOPIC_ROOT

EPOCH: Final = "meterd-epoch"
SEQ: Final = "meterd-seq"
PREV: Final = "meterd-prev"
# Entries a hub holds for a site while an earlier one is missing; past this the oldest go
# (the agent sends them again after the next hub restart, or at its next reconnect).
_WAITING_MAX: Final = 100_000


def ack_topic(site: str) -> str:
    return f"{TOPIC_ROOT}/{site}/ack"


def topic_site(topic: str) -> str | None:
    """The site of a reading topic ``meterd/v1/<site>/<key>/reading``."""
    parts = topic.split("/")
    return parts[2] if len(parts) == 5 and parts[-1] == "reading" else None  # noqa: PLR2004 - the topic's shape


@dataclass(frozen=True, slots=True)
class Confirmation:
    """What the hub publishes for one site: every entry of outbox ``epoch`` up to ``seq`` is committed."""

    epoch: str
    seq: int
    hub: str

    def to_bytes(self) -> bytes:
        return json.dumps({"epoch": self.epoch, "seq": self.seq, "hub": self.hub}).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Confirmation | None:
        """None for anything that is not a confirmation (it is ignored, never trusted)."""
        try:
            obj = json.loads(raw)
            confirmation = cls(str(obj["epoch"]), int(obj["seq"]), str(obj["hub"]))
        except (ValueError, TypeError, KeyError):
            return None
        return confirmation


@dataclass(frozen=True, slots=True)
class Position:
    """Where a forwarded message stands in its agent's outbox."""

    epoch: str
    seq: int
    prev: int

    def properties(self) -> list[tuple[str, str]]:
        return [(EPOCH, self.epoch), (SEQ, str(self.seq)), (PREV, str(self.prev))]

    @classmethod
    def from_properties(cls, pairs: list[tuple[str, str]] | None) -> Position | None:
        """None for a message without a (valid) position: published by another tool, nothing to confirm."""
        found = dict(pairs or [])
        try:
            return cls(found[EPOCH], int(found[SEQ]), int(found[PREV]))
        except (KeyError, ValueError):
            return None


class SiteChain:
    """The hub's view of one site's outbox: the highest seq up to which every entry is committed."""

    def __init__(self, epoch: str = "", seq: int = 0) -> None:
        self.epoch = epoch
        self.seq = seq
        self._waiting: dict[int, int] = {}  # seq -> prev, committed but not yet joined

    def committed(self, position: Position) -> bool:
        """Record one committed entry; True when the confirmed seq moved."""
        if position.epoch != self.epoch:  # a new outbox (an agent's store started afresh)
            self.epoch, self.seq = position.epoch, 0
            self._waiting.clear()
        if position.seq <= self.seq:
            return False
        self._waiting[position.seq] = position.prev
        if len(self._waiting) > _WAITING_MAX:
            del self._waiting[min(self._waiting)]
        before = self.seq
        # An entry whose predecessor is confirmed (or that opened a pass: prev 0) extends the chain.
        moved = True
        while moved:
            moved = False
            for seq in sorted(self._waiting):
                if self._waiting[seq] <= self.seq:
                    self.seq = max(self.seq, seq)
                    del self._waiting[seq]
                    moved = True
        return self.seq != before


class ChainStore(Protocol):
    """Where a hub keeps each site's confirmed position between runs (the daemon's store)."""

    async def load(self) -> dict[str, tuple[str, int]]: ...

    async def save(self, site: str, epoch: str, seq: int) -> None: ...
