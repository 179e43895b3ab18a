"""Printer strings (DisplayString / OCTET STRING) to clean text."""

from __future__ import annotations

import re
from typing import Final

# A value split as "first 16 characters as text, newline, the rest as hex pairs": how some
# walk tools print an OCTET STRING they take for binary (seen in the HP M880 recording).
_HEX_LINE: Final = re.compile(rb"^(?:[0-9A-Fa-f]{2} )*[0-9A-Fa-f]{2} ?$")


def display_text(raw: bytes) -> str:
    """Decode a device string: UTF-8 else Latin-1, hex-dump continuations joined, NULs and edges stripped."""
    first, *rest = raw.split(b"\n")
    if rest and all(_HEX_LINE.match(line) for line in rest):
        raw = first.rstrip() + b"".join(bytes.fromhex(line.decode("ascii")) for line in rest)
    raw = raw.replace(b"\x00", b"")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # the usual printer fallback; every byte maps to a character
    return text.strip()
