"""Roles and what each may do: the one table every API route and the RBAC test are checked against.

| permission        | admin | billing | technician | viewer | customer |
| ----------------- | ----- | ------- | ---------- | ------ | -------- |
| self              |   x   |    x    |     x      |   x    |    x     |  own session, own API tokens
| portal            |       |         |            |        |    x     |  the portal: its own customer only
| portal.manage     |   x   |    x    |            |        |          |  invite contacts, decide change requests
| devices.read      |   x   |    x    |     x      |   x    |          |  devices, readings
| readings.write    |   x   |    x    |     x      |        |          |  manual meter entry
| service.read      |   x   |    x    |     x      |        |          |  faults, service alerts, the Service page
| anomalies.read    |   x   |    x    |     x      |   x    |          |
| anomalies.review  |   x   |    x    |     x      |        |          |  acknowledge, resolve
| customers.read    |   x   |    x    |     x      |   x    |          |  customers, sites, assignments
| customers.write   |   x   |    x    |            |        |          |  customers, assignments
| contracts.read    |   x   |    x    |            |   x    |          |
| contracts.write   |   x   |    x    |            |        |          |
| invoices.read     |   x   |    x    |            |   x    |          |  invoices, previews, PDF/UBL, receivables
| invoices.write    |   x   |    x    |            |        |          |  billing runs, finalise, void, payments
| audit.read        |   x   |    x    |            |        |          |
| users.manage      |   x   |         |            |        |          |  users, their roles, anyone's tokens

The ``customer`` role (portal users, each bound to one customer) holds ``self`` and ``portal`` only:
no staff route lets it in, and every portal service narrows what it reads to that customer (and its
branches). It is not in ROLES: staff accounts are never made with it, only invitations make one.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

Role = Literal["admin", "billing", "technician", "viewer"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)
CUSTOMER: Final = "customer"

_EVERYONE: Final = frozenset(ROLES)
PERMISSIONS: Final[dict[str, frozenset[str]]] = {
    "self": _EVERYONE | {CUSTOMER},
    "portal": frozenset({CUSTOMER}),
    "portal.manage": frozenset({"admin", "billing"}),
    "devices.read": _EVERYONE,
    "readings.write": frozenset({"admin", "billing", "technician"}),
    # Dispatch is the office's and the technicians' work; a read-only viewer (reports, invoices) is not sent out.
    "service.read": frozenset({"admin", "billing", "technician"}),
    "anomalies.read": _EVERYONE,
    "anomalies.review": frozenset({"admin", "billing", "technician"}),
    "customers.read": _EVERYONE,
    "customers.write": frozenset({"admin", "billing"}),
    "contracts.read": frozenset({"admin", "billing", "viewer"}),
    "contracts.write": frozenset({"admin", "billing"}),
    "invoices.read": frozenset({"admin", "billing", "viewer"}),
    "invoices.write": frozenset({"admin", "billing"}),
    "audit.read": frozenset({"admin", "billing"}),
    "users.manage": frozenset({"admin"}),
}


def allowed(role: str, permission: str) -> bool:
    """Whether ``role`` holds ``permission``; an unknown permission is held by nobody."""
    return role in PERMISSIONS.get(permission, frozenset())


def may_delegate(holder: str, token_role: str) -> bool:
    """Whether a ``holder`` may issue a token of ``token_role``: never one that can do more than the holder."""
    return all(allowed(holder, p) for p, roles in PERMISSIONS.items() if token_role in roles)
