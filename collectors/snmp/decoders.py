"""The few named decoders a vendor profile may call on a packed OCTET STRING."""

from __future__ import annotations

from typing import Final

from daemon.kernel.errors import PayloadError

_WORD: Final = 7  # code, 0x01, 0x04 (value length), 32-bit big-endian value


def brother_words(blob: bytes) -> dict[int, int]:
    """Brother's counter blob: 7-byte words ``code 01 04 vv vv vv vv`` and one last byte.

    Real devices end the blob with ``0xff`` whatever the words hold; the `brother` library
    (github.com/bieniu/brother, brother/__init__.py ``_get_data``) drops that byte
    unconditionally. So the blob is checked by its word structure only: a whole number of
    words, each with the fixed ``01 04`` marker. A blob that fails is refused whole: a
    half-read blob would bill wrong.

    Raises:
        PayloadError: ``bad_blob`` with what was wrong.
    """
    if len(blob) < _WORD + 1 or (len(blob) - 1) % _WORD:
        raise PayloadError("bad_blob", f"{len(blob)} bytes is not a whole number of 7-byte words plus the end byte")
    body = blob[:-1]
    counters: dict[int, int] = {}
    for start in range(0, len(body), _WORD):
        code, marker, size = body[start], body[start + 1], body[start + 2]
        if marker != 0x01 or size != 0x04:  # noqa: PLR2004 - the word format's fixed bytes
            raise PayloadError("bad_blob", f"word {start // _WORD} starts {code:02x} {marker:02x} {size:02x}")
        counters[code] = int.from_bytes(body[start + 3 : start + _WORD], "big")
    return counters


def brother_blob(counters: dict[int, int]) -> bytes:
    """The inverse of :func:`brother_words`, ending ``0xff`` as real devices do (for tests)."""
    body = b"".join(bytes([code, 0x01, 0x04]) + value.to_bytes(4, "big") for code, value in counters.items())
    return body + b"\xff"
