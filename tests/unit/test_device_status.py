"""Status decoding (collectors/snmp/status.py): error bits in MIB order, the alert table's rows."""

from __future__ import annotations

import pytest

from collectors.snmp import status as st
from daemon.storage.faults import conditions


@pytest.mark.parametrize(("position", "name"), list(enumerate(st.ERROR_BITS)))
def test_each_error_bit_is_named_by_its_position_msb_first(position: int, name: str) -> None:
    """HOST-RESOURCES-MIB: "the most significant bit of the first byte being bit 0" (net-snmp's mibs/)."""
    raw = bytearray(2)
    raw[position // 8] = 0x80 >> (position % 8)
    assert st.error_bits(bytes(raw)) == (name,)


def test_error_bits_from_the_real_konica_c250i_walk_say_service_requested() -> None:
    # ../shared/walks/librenms/konica_c250i.snmprec: 1.3.6.1.2.1.25.3.5.1.2.1|4x|0100
    assert st.error_bits(bytes.fromhex("0100")) == ("serviceRequested",)


def test_error_bits_several_one_byte_empty_and_reserved() -> None:
    assert st.error_bits(bytes.fromhex("2480")) == ("lowToner", "jammed", "inputTrayMissing")
    assert st.error_bits(bytes.fromhex("40")) == ("noPaper",)  # devices may send one octet
    assert st.error_bits(b"") == ()  # Epson and Kyocera send an empty string: nothing detected
    assert st.error_bits(None) == ()
    assert st.error_bits(bytes.fromhex("0001")) == ("bit15",)  # reserved: named by number, not dropped


def _walked(rows: dict[str, dict[str, int | bytes]]) -> dict[str, dict[str, int | bytes]]:
    """Columns -> {OID: value}, as SnmpClient.walk_columns returns them, from suffix -> {column: value}."""
    out: dict[str, dict[str, int | bytes]] = {column: {} for column in st.ALERT_COLUMNS}
    for suffix, cells in rows.items():
        for column, value in cells.items():
            out[column][f"{column}.{suffix}"] = value
    return out


def test_alert_rows_are_decoded_with_their_names() -> None:
    """The real Kyocera P2040dw rows (printmaster): powerUp is an event, fuser under temperature a binary change."""
    walked = _walked(
        {
            "1.2": {
                st.ALERT_SEVERITY: 4,
                st.ALERT_TRAINING: 6,
                st.ALERT_GROUP: 5,
                st.ALERT_GROUP_INDEX: 1,
                st.ALERT_LOCATION: 0,
                st.ALERT_CODE: 503,
                st.ALERT_DESCRIPTION: b"",
            },
            "1.23": {
                st.ALERT_SEVERITY: 5,
                st.ALERT_TRAINING: 3,
                st.ALERT_GROUP: 10,
                st.ALERT_GROUP_INDEX: 1,
                st.ALERT_LOCATION: 0,
                st.ALERT_CODE: 1001,
                st.ALERT_DESCRIPTION: b"",
            },
            "1.30": {
                st.ALERT_SEVERITY: 3,
                st.ALERT_TRAINING: 4,
                st.ALERT_GROUP: 13,
                st.ALERT_GROUP_INDEX: 2,
                st.ALERT_LOCATION: -2,
                st.ALERT_CODE: 8,
                st.ALERT_DESCRIPTION: b"Jam in tray 2 ",
            },
            "1.31": {st.ALERT_SEVERITY: 3, st.ALERT_GROUP: 5, st.ALERT_CODE: 40000},
        }
    )
    alerts = st.alerts_of(walked)
    assert [(a.severity, a.group, a.code, a.is_condition) for a in alerts] == [
        ("warning", "generalPrinter", "powerUp", False),
        ("warningBinaryChangeEvent", "marker", "markerFuserUnderTemperature", False),
        ("critical", "mediaPath", "jam", True),
        ("critical", "generalPrinter", "vendor:40000", True),
    ]
    jam = alerts[2]
    assert (jam.training, jam.group_index, jam.location, jam.description) == ("trained", 2, None, "Jam in tray 2")
    assert jam.key == "mediaPath#2/jam"


def test_conditions_hold_status_bits_and_standing_alerts_only() -> None:
    status = st.DeviceStatus(
        device="down",
        printer="other",
        errors=("jammed", "lowToner"),
        alerts=(
            st.PrinterAlert("critical", "trained", "mediaPath", 2, None, "jam", "Jam"),
            st.PrinterAlert("critical", "trained", "mediaPath", 2, None, "jam", "Jam"),  # repeated row
            st.PrinterAlert("warningBinaryChangeEvent", "untrained", "cover", 1, None, "coverClosed", ""),
        ),
    )
    found = [(c.kind, c.key, c.code) for c in conditions(status)]
    assert found == [
        ("status", "status", "down"),
        ("error", "error/jammed", "jammed"),
        ("error", "error/lowToner", "lowToner"),
        ("alert", "alert/mediaPath#2/jam", "jam"),
    ]
    assert not status.settled
    assert st.DeviceStatus(device="running", printer="idle").settled
