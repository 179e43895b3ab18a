"""SNMP v1/v2c messages in BER: the few fixed shapes a manager sends and reads (RFC 1157, RFC 3416).

Why not pyasn1, pysnmp's codec: its schema-driven decoder was 55% of a warm poll's CPU
(bench/README.md), and pysnmp's v1arch wraps every value in pyasn1 objects that are then
unwrapped again. A manager only ever encodes three request shapes and decodes one answer
shape, so both are written out here over plain ``bytes``; the tests check them against
pyasn1 for any message. SNMPv3 (USM) stays on pysnmp's engine.

Values come back as plain Python: ``int`` for INTEGER and the application integers,
``bytes`` for OCTET STRING, IpAddress and Opaque, dotted ``str`` for OBJECT IDENTIFIER,
``None`` where the device has no value (NULL, noSuchObject, noSuchInstance, endOfMibView,
or a type SNMP does not define).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from daemon.kernel.errors import PayloadError

Value = int | bytes | str  # str only for OBJECT IDENTIFIER values, in dotted form

GET_REQUEST: Final = 0xA0
GET_NEXT_REQUEST: Final = 0xA1
RESPONSE: Final = 0xA2
GET_BULK_REQUEST: Final = 0xA5

_SEQUENCE: Final = 0x30
_INTEGER: Final = 0x02
_OCTET_STRING: Final = 0x04
_OBJECT_IDENTIFIER: Final = 0x06
_NULL_VALUE: Final = b"\x05\x00"
# Counter32, Gauge32/Unsigned32, TimeTicks, Counter64, and SNMPv2's obsolete UInteger32.
# Read unsigned: an agent that sends 2^31..2^32-1 without the leading zero byte is common.
_UNSIGNED_TAGS: Final = frozenset({0x41, 0x42, 0x43, 0x46, 0x47})
_BYTES_TAGS: Final = frozenset({_OCTET_STRING, 0x40, 0x44})  # OCTET STRING, IpAddress, Opaque
_SHORT_LENGTH_LIMIT: Final = 0x80
_MAX_LENGTH_OCTETS: Final = 4  # a UDP datagram is under 64 KiB; more length octets is garbage
_OID_CACHE_LIMIT: Final = 100_000

# RFC 3416 error-status names, as devices' manuals and net-snmp print them.
ERROR_STATUS_NAMES: Final = (
    "noError",
    "tooBig",
    "noSuchName",
    "badValue",
    "readOnly",
    "genErr",
    "noAccess",
    "wrongType",
    "wrongLength",
    "wrongEncoding",
    "wrongValue",
    "noCreation",
    "inconsistentValue",
    "resourceUnavailable",
    "commitFailed",
    "undoFailed",
    "authorizationError",
    "notWritable",
    "inconsistentName",
)


@dataclass(frozen=True, slots=True)
class Response:
    """A decoded Response-PDU with its message header."""

    version: int  # 0 = SNMPv1, 1 = SNMPv2c
    community: bytes
    request_id: int
    error_status: int
    error_index: int
    var_binds: list[tuple[str, Value | None]]

    def error_name(self) -> str:
        return error_status_name(self.error_status)


def error_status_name(code: int) -> str:
    """RFC 3416's name of an error-status (``tooBig``, ``noSuchName`` …)."""
    return ERROR_STATUS_NAMES[code] if 0 <= code < len(ERROR_STATUS_NAMES) else f"error {code}"


def encode_request(
    *,
    version: int,
    community: bytes,
    pdu_type: int,
    request_id: int,
    oids: Sequence[str],
    non_repeaters: int = 0,
    max_repetitions: int = 0,
) -> bytes:
    """A GetRequest, GetNextRequest or GetBulkRequest message asking for ``oids``.

    For GetBulk, non-repeaters and max-repetitions take the places of error-status and
    error-index (RFC 3416 section 3); they are 0 in the other two.
    """
    pdu = _tlv(
        pdu_type,
        _integer(request_id) + _integer(non_repeaters) + _integer(max_repetitions) + _var_bind_list(tuple(oids)),
    )
    return _tlv(_SEQUENCE, _integer(version) + _tlv(_OCTET_STRING, community) + pdu)


def decode_response(message: bytes) -> Response:
    """Decode one datagram that should be a v1/v2c Response.

    Raises:
        PayloadError: ``bad_snmp_message``, saying what is wrong with it.
    """
    try:
        return _decode_response(message)
    except (IndexError, ValueError) as err:
        raise PayloadError("bad_snmp_message", str(err) or "truncated message") from err


def _decode_response(message: bytes) -> Response:
    tag, position, end = _header(message, 0)
    if tag != _SEQUENCE or end != len(message):
        msg = "not one SNMP message (outer SEQUENCE and datagram length differ)"
        raise ValueError(msg)
    version, position = _expect_integer(message, position)
    tag, start, position = _header(message, position)
    if tag != _OCTET_STRING:
        msg = "community is not an OCTET STRING"
        raise ValueError(msg)
    community = message[start:position]
    tag, position, pdu_end = _header(message, position)
    if tag != RESPONSE:
        msg = f"PDU type {tag:#04x} is not a Response"
        raise ValueError(msg)
    request_id, position = _expect_integer(message, position)
    error_status, position = _expect_integer(message, position)
    error_index, position = _expect_integer(message, position)
    tag, position, list_end = _header(message, position)
    if tag != _SEQUENCE or list_end != pdu_end:
        msg = "variable-bindings are not one SEQUENCE filling the PDU"
        raise ValueError(msg)
    return Response(version, community, request_id, error_status, error_index, _var_binds(message, position, list_end))


def _var_binds(message: bytes, position: int, list_end: int) -> list[tuple[str, Value | None]]:
    """The (name, value) pairs; short-form lengths, nearly every one, are read inline (this is the hot loop)."""
    var_binds: list[tuple[str, Value | None]] = []
    while position < list_end:
        if message[position] != _SEQUENCE:
            msg = "a variable-binding is not a SEQUENCE"
            raise ValueError(msg)
        length = message[position + 1]
        if length < _SHORT_LENGTH_LIMIT:
            start, bind_end = position + 2, position + 2 + length
        else:
            _tag, start, bind_end = _header(message, position)
        if message[start] != _OBJECT_IDENTIFIER:
            msg = "a variable-binding's name is not an OBJECT IDENTIFIER"
            raise ValueError(msg)
        length = message[start + 1]
        if length < _SHORT_LENGTH_LIMIT:
            name_start, name_end = start + 2, start + 2 + length
        else:
            _tag, name_start, name_end = _header(message, start)
        if bind_end > list_end or name_end >= bind_end:
            msg = "a variable-binding overruns its list"
            raise ValueError(msg)
        name = _oid_text(message[name_start:name_end])
        tag, length = message[name_end], message[name_end + 1]
        if length < _SHORT_LENGTH_LIMIT:
            value_start, value_end = name_end + 2, name_end + 2 + length
        else:
            tag, value_start, value_end = _header(message, name_end)
        if value_end != bind_end:
            msg = f"variable-binding {name} has more than a name and a value"
            raise ValueError(msg)
        var_binds.append((name, _value(tag, message, value_start, value_end)))
        position = bind_end
    return var_binds


def _header(message: bytes, position: int) -> tuple[int, int, int]:
    """(tag, start of contents, end of contents) of the TLV at ``position``."""
    tag = message[position]
    length = message[position + 1]
    position += 2
    if length & 0x80:
        octets = length & 0x7F
        if not 0 < octets <= _MAX_LENGTH_OCTETS:
            msg = "indefinite or oversized length (not allowed in SNMP)"
            raise ValueError(msg)
        length = int.from_bytes(message[position : position + octets], "big")
        position += octets
    end = position + length
    if end > len(message):
        msg = "truncated message"
        raise ValueError(msg)
    return tag, position, end


def _expect_integer(message: bytes, position: int) -> tuple[int, int]:
    tag, start, end = _header(message, position)
    if tag != _INTEGER or start == end:
        msg = "expected an INTEGER in the message header"
        raise ValueError(msg)
    return int.from_bytes(message[start:end], "big", signed=True), end


def _value(tag: int, message: bytes, start: int, end: int) -> Value | None:
    if tag in _UNSIGNED_TAGS:
        return int.from_bytes(message[start:end], "big")
    if tag in _BYTES_TAGS:
        return message[start:end]
    if tag == _INTEGER:
        return int.from_bytes(message[start:end], "big", signed=True)
    if tag == _OBJECT_IDENTIFIER:
        return _oid_text(message[start:end])
    return None  # NULL, noSuchObject, noSuchInstance, endOfMibView, or not an SNMP type


_oid_texts: dict[bytes, str] = {}


def _oid_text(encoded: bytes) -> str:
    """Dotted text of an OID's contents; a device's OIDs repeat every poll, so they are remembered."""
    text = _oid_texts.get(encoded)
    if text is None:
        text = _decode_oid(encoded)
        if len(_oid_texts) >= _OID_CACHE_LIMIT:
            _oid_texts.clear()
        _oid_texts[encoded] = text
    return text


def _decode_oid(encoded: bytes) -> str:
    if not encoded or encoded[-1] & 0x80:
        msg = "empty or unterminated OBJECT IDENTIFIER"
        raise ValueError(msg)
    arcs: list[int] = []
    arc = 0
    for octet in encoded:
        arc = (arc << 7) | (octet & 0x7F)
        if not octet & 0x80:
            arcs.append(arc)
            arc = 0
    first = arcs[0]
    head = (0, first) if first < 40 else (1, first - 40) if first < 80 else (2, first - 80)  # noqa: PLR2004 - X.690 8.19.4
    return ".".join(map(str, (*head, *arcs[1:])))


def _length(length: int) -> bytes:
    if length < _SHORT_LENGTH_LIMIT:
        return bytes((length,))
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(octets),)) + octets


def _tlv(tag: int, contents: bytes) -> bytes:
    return bytes((tag,)) + _length(len(contents)) + contents


def _integer(value: int) -> bytes:
    return _tlv(_INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


@lru_cache(maxsize=4096)
def _var_bind_list(oids: tuple[str, ...]) -> bytes:
    """The request's variable-bindings (each OID with a NULL value); a warm plan repeats its list every poll."""
    return _tlv(_SEQUENCE, b"".join(_tlv(_SEQUENCE, _encode_oid(oid) + _NULL_VALUE) for oid in oids))


def _encode_oid(oid: str) -> bytes:
    try:
        arcs = [int(arc) for arc in oid.strip(".").split(".")]
    except ValueError:
        msg = f"{oid!r} is not a dotted numeric OID"
        raise ValueError(msg) from None
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40) or min(arcs) < 0:  # noqa: PLR2004 - X.690 8.19.4
        msg = f"{oid!r} is not a valid OID"
        raise ValueError(msg)
    contents = b"".join(_base128(arc) for arc in (arcs[0] * 40 + arcs[1], *arcs[2:]))
    return _tlv(_OBJECT_IDENTIFIER, contents)


def _base128(arc: int) -> bytes:
    """One OID sub-identifier: 7 bits per octet, most significant first, the high bit on all but the last."""
    septets = [arc & 0x7F]
    remaining = arc >> 7
    while remaining:
        septets.append(0x80 | (remaining & 0x7F))
        remaining >>= 7
    return bytes(reversed(septets))
