"""meterd's own v1/v2c BER codec, checked against pyasn1 (pysnmp's codec) for any message."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyasn1.codec.ber import encoder

from collectors.snmp import ber
from daemon.kernel.errors import PayloadError
from tests.snmp_messages import V1, V2C, pyasn1_response

arcs = st.integers(min_value=0, max_value=2**32 - 1)
oids = st.builds(
    lambda first, second, rest: ".".join(map(str, (first, second, *rest))),
    st.integers(min_value=0, max_value=2),
    st.integers(min_value=0, max_value=39),
    st.lists(arcs, max_size=20),
)
communities = st.binary(max_size=40)
request_ids = st.integers(min_value=0, max_value=2**31 - 1)

# (pysnmp value, what meterd's decoder must give for it)
values = st.one_of(
    st.integers(min_value=-(2**31), max_value=2**31 - 1).map(lambda n: (V2C.Integer32(n), n)),
    st.binary(max_size=300).map(lambda b: (V2C.OctetString(b), b)),
    oids.map(lambda o: (V2C.ObjectIdentifier(o), o)),
    st.integers(min_value=0, max_value=2**32 - 1).map(lambda n: (V2C.Counter32(n), n)),
    st.integers(min_value=0, max_value=2**32 - 1).map(lambda n: (V2C.Gauge32(n), n)),
    st.integers(min_value=0, max_value=2**32 - 1).map(lambda n: (V2C.TimeTicks(n), n)),
    st.integers(min_value=0, max_value=2**64 - 1).map(lambda n: (V2C.Counter64(n), n)),
    st.binary(min_size=4, max_size=4).map(lambda b: (V2C.IpAddress(b), b)),
    st.just((V2C.Null(""), None)),
    st.just((V2C.NoSuchObject(""), None)),
    st.just((V2C.NoSuchInstance(""), None)),
    st.just((V2C.EndOfMibView(""), None)),
)


@given(communities, request_ids, st.lists(st.tuples(oids, values), max_size=30))
def test_any_v2c_response_decodes_as_pyasn1_encoded_it(
    community: bytes, request_id: int, binds: list[tuple[str, tuple[Any, object]]]
) -> None:
    message = pyasn1_response(V2C, community, request_id, [(oid, value) for oid, (value, _) in binds])

    response = ber.decode_response(message)

    assert (response.version, response.community, response.request_id) == (1, community, request_id)
    assert response.var_binds == [(oid, plain) for oid, (_, plain) in binds]


def test_a_v1_error_answer_keeps_status_index_and_name() -> None:
    message = pyasn1_response(V1, b"public", 77, [("1.3.6.1.2.1.1.1.0", V1.Null(""))], status=2, index=3)

    response = ber.decode_response(message)

    assert (response.version, response.error_status, response.error_index) == (0, 2, 3)
    assert response.error_name() == "noSuchName"


def _pyasn1_request(
    module: Any, pdu: Any, community: bytes, request_id: int, *, names: list[str], bulk: tuple[int, int] | None = None
) -> bytes:
    module.apiPDU.set_defaults(pdu)
    if bulk is not None:
        module.apiBulkPDU.set_non_repeaters(pdu, bulk[0])
        module.apiBulkPDU.set_max_repetitions(pdu, bulk[1])
    module.apiPDU.set_request_id(pdu, request_id)
    module.apiPDU.set_varbinds(pdu, [(name, module.Null("")) for name in names])
    message = module.Message()
    module.apiMessage.set_defaults(message)
    module.apiMessage.set_community(message, community)
    module.apiMessage.set_pdu(message, pdu)
    return bytes(encoder.encode(message))


@given(communities, request_ids, st.lists(oids, min_size=1, max_size=30))
def test_get_and_getnext_requests_are_byte_for_byte_pyasn1s(
    community: bytes, request_id: int, names: list[str]
) -> None:
    for module, version in ((V1, 0), (V2C, 1)):
        for pdu_type, pdu in (
            (ber.GET_REQUEST, module.GetRequestPDU()),
            (ber.GET_NEXT_REQUEST, module.GetNextRequestPDU()),
        ):
            expected = _pyasn1_request(module, pdu, community, request_id, names=names)
            mine = ber.encode_request(
                version=version, community=community, pdu_type=pdu_type, request_id=request_id, oids=names
            )
            assert mine == expected


@given(communities, request_ids, st.lists(oids, min_size=1, max_size=10), st.integers(0, 5), st.integers(0, 200))
def test_getbulk_requests_are_byte_for_byte_pyasn1s(
    community: bytes, request_id: int, names: list[str], non_repeaters: int, repetitions: int
) -> None:
    expected = _pyasn1_request(
        V2C, V2C.GetBulkRequestPDU(), community, request_id, names=names, bulk=(non_repeaters, repetitions)
    )

    mine = ber.encode_request(
        version=1,
        community=community,
        pdu_type=ber.GET_BULK_REQUEST,
        request_id=request_id,
        oids=names,
        non_repeaters=non_repeaters,
        max_repetitions=repetitions,
    )

    assert mine == expected


def test_a_counter_sent_without_its_leading_zero_still_reads_unsigned() -> None:
    good = pyasn1_response(V2C, b"c", 1, [("1.3.6.1.2.1.43.10.2.1.4.1.1", V2C.Counter32(4_294_967_290))])
    assert b"\x41\x05\x00\xff\xff\xff\xfa" in good
    sloppy = good.replace(b"\x41\x05\x00\xff\xff\xff\xfa", b"\x41\x04\xff\xff\xff\xfa")
    sloppy = _shrink_lengths(sloppy, by=1)

    assert ber.decode_response(sloppy).var_binds == [("1.3.6.1.2.1.43.10.2.1.4.1.1", 4_294_967_290)]


def _shrink_lengths(message: bytes, *, by: int) -> bytes:
    """Shorten the enclosing constructed TLVs' short-form lengths after a value lost ``by`` octets."""
    out = bytearray(message)
    position = 0
    while position < len(out):  # the constructed headers are the ones before the OID of the varbind
        tag, length = out[position], out[position + 1]
        if tag not in {0x30, ber.RESPONSE} or length & 0x80:
            break
        out[position + 1] = length - by
        position += 2
        if tag == ber.RESPONSE:  # skip request-id, error-status, error-index up to the varbind list
            for _ in range(3):
                position += 2 + out[position + 1]
        elif out[position] in {0x02, 0x04}:  # version, community of the message header
            for _ in range(2):
                position += 2 + out[position + 1]
    return bytes(out)


@given(communities, request_ids, st.lists(st.tuples(oids, values), max_size=8), st.data())
def test_every_truncation_is_a_payload_error_never_a_crash(
    community: bytes, request_id: int, binds: list[tuple[str, tuple[Any, object]]], data: st.DataObject
) -> None:
    message = pyasn1_response(V2C, community, request_id, [(oid, value) for oid, (value, _) in binds])
    cut = data.draw(st.integers(min_value=0, max_value=len(message) - 1))

    with pytest.raises(PayloadError, match="bad_snmp_message"):
        ber.decode_response(message[:cut])


@given(st.binary(max_size=200))
def test_garbage_is_a_payload_error_or_a_response(garbage: bytes) -> None:
    try:
        response = ber.decode_response(garbage)
    except PayloadError as err:
        assert err.reason == "bad_snmp_message"
    else:
        assert isinstance(response.var_binds, list)


@pytest.mark.parametrize(
    ("message", "says"),
    [
        (b"\x30\x80\x02\x01\x01", "indefinite"),
        (b"\x30\x03\x02\x01\x01\x00", "differ"),
        (b"\x30\x0b\x02\x01\x01\x04\x01c\xa0\x03\x02\x01\x01", "not a Response"),
    ],
)
def test_malformed_headers_say_what_is_wrong(message: bytes, says: str) -> None:
    with pytest.raises(PayloadError, match=says):
        ber.decode_response(message)


def test_an_oid_that_is_not_numeric_is_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="not a dotted numeric OID"):
        ber.encode_request(version=1, community=b"c", pdu_type=ber.GET_REQUEST, request_id=1, oids=["sysDescr.0"])
