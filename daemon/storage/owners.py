"""Which customer owns a device today: the one answer the replenishment list and the service page both give.

A device's open assignment names its customer; a device without one belongs to its site's
customer (a site is an agent's ``site`` name, bound to one customer). Neither: nobody's yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from daemon.storage.models import AssignmentRow, CustomerRow, Device, SiteRow


@dataclass(frozen=True, slots=True)
class Owner:
    code: str
    name: str  # the customer's legal name


class Owners:
    """Owners per device key (open assignments) and per site, read once for a whole list."""

    def __init__(self, by_device: dict[str, Owner], by_site: dict[str, Owner]) -> None:
        self._by_device = by_device
        self._by_site = by_site

    def of(self, device: str, site: str) -> Owner | None:
        """The customer of device ``device`` at ``site``: its assignment's, else its site's, else None."""
        return self._by_device.get(device) or self._by_site.get(site)


async def owners(conn: AsyncConnection, today: date) -> Owners:
    """Every device's and every site's customer as of ``today``."""
    by_site = {
        site: Owner(code, name)
        for site, code, name in await conn.execute(
            select(SiteRow.name, CustomerRow.code, CustomerRow.legal_name).join(
                CustomerRow, CustomerRow.id == SiteRow.customer_id
            )
        )
    }
    held = (
        select(Device.key, CustomerRow.code, CustomerRow.legal_name)
        .join(AssignmentRow, AssignmentRow.device_id == Device.id)
        .join(CustomerRow, CustomerRow.id == AssignmentRow.customer_id)
        .where(AssignmentRow.valid_from <= today, (AssignmentRow.valid_to.is_(None)) | (AssignmentRow.valid_to > today))
    )
    by_device = {key: Owner(code, name) for key, code, name in await conn.execute(held)}
    return Owners(by_device, by_site)
