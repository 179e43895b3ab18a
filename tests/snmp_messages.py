"""SNMP messages built and read by pyasn1 (pysnmp's codec): the reference meterd's own codec is held to."""

from __future__ import annotations

from typing import Any

from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import api

V1 = api.PROTOCOL_MODULES[api.SNMP_VERSION_1]
V2C = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]


def pyasn1_response(
    module: Any, community: bytes, request_id: int, binds: list[tuple[str, Any]], *, status: int = 0, index: int = 0
) -> bytes:
    pdu = module.GetResponsePDU()
    module.apiPDU.set_defaults(pdu)
    module.apiPDU.set_request_id(pdu, request_id)
    module.apiPDU.set_error_status(pdu, status)
    module.apiPDU.set_error_index(pdu, index)
    module.apiPDU.set_varbinds(pdu, binds)
    message = module.Message()
    module.apiMessage.set_defaults(message)
    module.apiMessage.set_community(message, community)
    module.apiMessage.set_pdu(message, pdu)
    return bytes(encoder.encode(message))


def pyasn1_request_header(message: bytes) -> tuple[bytes, int, list[str]]:
    """(community, request-id, OIDs asked) of a v2c request."""
    decoded, _rest = decoder.decode(message, asn1Spec=V2C.Message())
    pdu = V2C.apiMessage.get_pdu(decoded)
    names = [str(name) for name, _value in V2C.apiPDU.get_varbinds(pdu)]
    return bytes(V2C.apiMessage.get_community(decoded)), int(V2C.apiPDU.get_request_id(pdu)), names
