"""Device strings to text."""

from __future__ import annotations

import pytest

from collectors.snmp.text import display_text


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"Toner (Cyan)", "Toner (Cyan)"),
        (b"  Black Toner\x00\x00", "Black Toner"),
        ("Kyocera Müller".encode(), "Kyocera Müller"),
        ("Toner Noir Ä".encode("latin-1"), "Toner Noir Ä"),
        # The HP M880 recording: 16 characters of text, then the rest as hex pairs.
        (
            bytes.fromhex(
                "426C61636B20436172747269646765200a333820333220333720343120323020343820353020323020"
                "343320343620333320333020333020343120303020"
            ),
            "Black Cartridge827A HP CF300A",
        ),
        (
            bytes.fromhex(
                "4D6167656E74612043617274726964670a363520323020333820333220333720343120323020343820"
                "3530203230203433203436203333203330203333203431200a303020"
            ),
            "Magenta Cartridge 827A HP CF303A",
        ),
        (b"Line one\nline two", "Line one\nline two"),  # real text with a newline is left alone
    ],
)
def test_display_text(raw: bytes, text: str) -> None:
    assert display_text(raw) == text
