"""An SNMPv3 (USM) user as configured; kept apart from ``v3`` so that naming one does not load pysnmp."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

AuthProtocol = Literal["none", "sha", "sha256"]
PrivProtocol = Literal["none", "aes128", "aes256"]


@dataclass(frozen=True, slots=True)
class UsmCredentials:
    """One SNMPv3 user: noAuthNoPriv, authNoPriv or authPriv. Keys never appear in a repr."""

    user: str
    auth_protocol: AuthProtocol = "none"
    auth_key: str = field(default="", repr=False)
    priv_protocol: PrivProtocol = "none"
    priv_key: str = field(default="", repr=False)
    context: str = ""
