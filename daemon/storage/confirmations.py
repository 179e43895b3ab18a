"""The hubs' confirmations to agents (collectors/mqtt/ack.py), kept where every hub of a group sees them.

Hubs in an MQTT shared group each get part of a site's stream. Each records the outbox
positions it committed; under the site's row lock, the one that commits joins them with
what the others committed, moves the site's confirmed seq over what is now contiguous,
and publishes it before it lets go: the retained confirmation follows the stored one, so
it never goes back, and never passes an entry no hub has committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import ColumnElement, and_, delete, exists, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from collectors.mqtt.ack import Confirmation, Position, Publish, extend
from daemon.kernel.clock import Clock, utc_now
from daemon.storage.models import HubCommitted, HubConfirmation
from daemon.storage.repository import Store

log = structlog.get_logger(__name__)


class StoreChains:
    """The ChainStore of a hub: the daemon's store (PostgreSQL when hubs share it)."""

    def __init__(self, store: Store, clock: Clock = utc_now) -> None:
        self._store = store
        self._clock = clock

    async def confirm(self, site: str, positions: Sequence[Position], publish: Publish) -> None:
        async def _run() -> None:
            async with self._store.engine.begin() as conn:
                row = await self._locked(conn, site)
                epoch, seq = row.epoch, row.seq
                if positions:
                    # The newest outbox counts (an agent whose store started afresh): the old one's rows go.
                    newest = positions[-1].epoch
                    if newest != epoch:
                        epoch, seq = newest, 0
                        await conn.execute(
                            delete(HubCommitted).where(HubCommitted.site == site, HubCommitted.epoch != epoch)
                        )
                    fresh = {p.seq: p.prev for p in positions if p.epoch == epoch and p.seq > seq}
                    if fresh:
                        now = self._clock()
                        rows = [
                            {"site": site, "epoch": epoch, "seq": s, "prev": p, "committed_at": now}
                            for s, p in fresh.items()
                        ]
                        await conn.execute(self._store.dialect.insert(HubCommitted).on_conflict_do_nothing(), rows)
                    waiting = await conn.execute(
                        select(HubCommitted.seq, HubCommitted.prev).where(
                            HubCommitted.site == site, HubCommitted.epoch == epoch, HubCommitted.seq > seq
                        )
                    )
                    seq = extend(seq, [(s, p) for s, p in waiting])
                    if (epoch, seq) != (row.epoch, row.seq):
                        await conn.execute(
                            update(HubConfirmation)
                            .where(HubConfirmation.site == site)
                            .values(epoch=epoch, seq=seq, moved_at=self._clock())
                        )
                        await conn.execute(
                            delete(HubCommitted).where(
                                HubCommitted.site == site, HubCommitted.epoch == epoch, HubCommitted.seq <= seq
                            )
                        )
                # Published even when it did not move: an agent learns the site's hub id.
                await publish(site, Confirmation(epoch, seq, row.hub))

        await self._store.guard(_run(), "confirm committed readings")

    async def restart(self, publish: Publish) -> None:
        hub = uuid.uuid4().hex
        for site in await self._sites(None):
            await self._new_hub(site, hub, publish, older_than=None)

    async def resend_stalled(self, older_than_s: float, publish: Publish) -> None:
        older_than = self._clock() - timedelta(seconds=older_than_s)
        for site in await self._sites(older_than):
            await self._new_hub(site, uuid.uuid4().hex, publish, older_than=older_than)

    async def _sites(self, stalled_before: datetime | None) -> list[str]:
        """Every site with a confirmation, or those stuck since ``stalled_before`` on a missing entry."""

        async def _query() -> list[str]:
            stmt = select(HubConfirmation.site)
            if stalled_before is not None:
                stmt = stmt.where(_stalled(stalled_before))
            async with self._store.engine.connect() as conn:
                return list((await conn.execute(stmt)).scalars())

        return await self._store.guard(_query(), "read hub confirmations")

    async def _new_hub(self, site: str, hub: str, publish: Publish, *, older_than: datetime | None) -> None:
        async def _run() -> None:
            async with self._store.engine.begin() as conn:
                row = await self._locked(conn, site)
                if older_than is not None:
                    # Another hub may have asked (or the entry come) since the candidates were read.
                    still = select(HubConfirmation.site).where(HubConfirmation.site == site, _stalled(older_than))
                    if (await conn.execute(still)).first() is None:
                        return
                    log.warning("hub_confirmation_stalled_resend_asked", site=site, confirmed=row.seq)
                await conn.execute(
                    update(HubConfirmation).where(HubConfirmation.site == site).values(hub=hub, moved_at=self._clock())
                )
                await publish(site, Confirmation(row.epoch, row.seq, hub))

        await self._store.guard(_run(), "renew hub confirmation")

    async def _locked(self, conn: AsyncConnection, site: str) -> _Row:
        """The site's confirmation row, held until the transaction ends (created if new).

        The insert comes first on both backends: on SQLite it takes the write lock at once
        (a read first could not be upgraded past another writer), on PostgreSQL the row to lock.
        """
        fresh = {"site": site, "epoch": "", "seq": 0, "hub": uuid.uuid4().hex, "moved_at": self._clock()}
        await conn.execute(self._store.dialect.insert(HubConfirmation).values(fresh).on_conflict_do_nothing())
        stmt = select(HubConfirmation.epoch, HubConfirmation.seq, HubConfirmation.hub).where(
            HubConfirmation.site == site
        )
        if self._store.dialect is postgresql:
            stmt = stmt.with_for_update()
        epoch, seq, hub = (await conn.execute(stmt)).one()
        return _Row(epoch, int(seq), hub)


@dataclass(frozen=True, slots=True)
class _Row:
    epoch: str
    seq: int
    hub: str


def _stalled(before: datetime) -> ColumnElement[bool]:
    """The site waits on a missing entry since ``before`` and nothing was asked or moved since."""
    waiting_long = exists().where(
        and_(
            HubCommitted.site == HubConfirmation.site,
            HubCommitted.epoch == HubConfirmation.epoch,
            HubCommitted.seq > HubConfirmation.seq,
            HubCommitted.committed_at < before,
        )
    )
    return and_(HubConfirmation.moved_at < before, waiting_long)
