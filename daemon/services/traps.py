"""SNMP traps for the daemon: a printer alert from a polled device polls that device at once.

A jam then shows within seconds instead of at the next round. The sender's address must be one
the daemon polls (by IP, as snmp.targets lists it, or inside a listed range): a trap from anywhere
else is logged and ignored, so a spoofed trap can at most cause one extra poll of a known printer.
"""

from __future__ import annotations

import structlog

from collectors.snmp.traps import OnTrap, Trap, TrapListener
from daemon.services.polling import PollRound
from daemon.settings import Settings

log = structlog.get_logger(__name__)


def trap_handler(poll_round: PollRound) -> OnTrap:
    async def handle(sender: str, trap: Trap) -> None:
        if await poll_round.poll_now(sender):
            log.info("trap_polled", sender=sender, version=trap.version)
        else:
            log.warning("trap_ignored", sender=sender, reason="not an address meterd polls")

    return handle


def trap_listener(settings: Settings, poll_round: PollRound) -> TrapListener:
    traps = settings.snmp.traps
    communities = [c.get_secret_value() for c in (traps.communities or settings.snmp.communities)]
    return TrapListener(traps.host, traps.port, communities, trap_handler(poll_round))
