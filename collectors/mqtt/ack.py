"""End-to-end acknowledgement: an agent's outbox rows leave only when the hub has committed them.

The broker's PUBACK says the broker has a message, not that a hub stored it: a hub away
longer than its session expiry loses what the broker queued for it. So each forwarded
message carries its outbox position (user properties: the agent's outbox ``epoch``, the
entry's ``seq`` and the ``prev`` entry sent before it in the same pass, 0 for a pass's
first). The hub, after committing a batch, publishes per site the highest ``seq`` up to
which it has committed every entry (retained, on ``meterd/v1/<site>/ack``); the agent
deletes its rows up to there. Hubs sharing a site's stream (an MQTT shared group) join
their parts in the store they share (ChainStore), and whichever commits publishes; so the
confirmation never passes an entry no hub committed, and never goes back within an epoch.
A hub that starts a session, or finds a site's chain stuck on a missing entry (held in
a stopped hub's broker session, say), says so with a new ``hub`` id in that message, and
the agent sends again everything not yet confirmed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from collectors.mqtt.connection import TOPIC_ROOT

EPOCH: Final = "meterd-epoch"
SEQ: Final = "meterd-seq"
PREV: Final = "meterd-prev"


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


def extend(seq: int, committed: Iterable[tuple[int, int]]) -> int:
    """The highest seq up to which every entry is committed, from ``seq`` and the ``(seq, prev)`` committed beyond it.

    An entry whose predecessor is confirmed (or that opened a pass: prev 0) extends the
    chain. One pass in seq order is enough: a predecessor always has a smaller seq.
    """
    for entry, prev in sorted(committed):
        if entry > seq and prev <= seq:
            seq = entry
    return seq


Publish = Callable[[str, Confirmation], Awaitable[None]]
"""Publish a site's confirmation (retained): called while no other hub can confirm that site."""


class ChainStore(Protocol):
    """Where hubs keep each site's confirmed position: the store, shared by every hub of a group.

    Hubs in a shared group each commit part of a site's entries; the chain is joined in the
    store, so whichever hub commits the missing entry moves the site's confirmation.
    """

    async def confirm(self, site: str, positions: Sequence[Position], publish: Publish) -> None:
        """Add committed entries, move the site's chain over what is now contiguous, publish it."""
        ...

    async def restart(self, publish: Publish) -> None:
        """A hub starts a session: every site gets a new hub id (its agent sends again what is unconfirmed)."""
        ...

    async def resend_stalled(self, older_than_s: float, publish: Publish) -> None:
        """Sites whose chain has waited that long on a missing entry get a new hub id: their agents send again."""
        ...
