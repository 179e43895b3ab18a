"""Device status and faults: HOST-RESOURCES-MIB status and error bits, the Printer-MIB alert table.

HOST-RESOURCES-MIB is RFC 2790, the Printer-MIB RFC 3805. Pure: answers in, typed values out;
nothing here is stored.

The error bits follow hrPrinterDetectedErrorState's DESCRIPTION (net-snmp's mibs/HOST-RESOURCES-MIB.txt):
"Bits are numbered starting with the most significant bit of the first byte being bit 0". The alert
codes and groups are RFC 3805's PrtAlertCodeTC / PrtAlertGroupTC (as IANA-PRINTER-MIB keeps them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from collectors.snmp.client import Value
from collectors.snmp.text import display_text

HR_DEVICE_STATUS: Final = "1.3.6.1.2.1.25.3.2.1.5"
HR_PRINTER_STATUS: Final = "1.3.6.1.2.1.25.3.5.1.1"
HR_PRINTER_ERROR_STATE: Final = "1.3.6.1.2.1.25.3.5.1.2"
# prtAlertEntry columns (index: hrDeviceIndex.prtAlertIndex); prtAlertTime (9) is the device's uptime: not kept.
ALERT_SEVERITY: Final = "1.3.6.1.2.1.43.18.1.1.2"
ALERT_TRAINING: Final = "1.3.6.1.2.1.43.18.1.1.3"
ALERT_GROUP: Final = "1.3.6.1.2.1.43.18.1.1.4"
ALERT_GROUP_INDEX: Final = "1.3.6.1.2.1.43.18.1.1.5"
ALERT_LOCATION: Final = "1.3.6.1.2.1.43.18.1.1.6"
ALERT_CODE: Final = "1.3.6.1.2.1.43.18.1.1.7"
ALERT_DESCRIPTION: Final = "1.3.6.1.2.1.43.18.1.1.8"
ALERT_COLUMNS: Final = (
    ALERT_SEVERITY,
    ALERT_TRAINING,
    ALERT_GROUP,
    ALERT_GROUP_INDEX,
    ALERT_LOCATION,
    ALERT_CODE,
    ALERT_DESCRIPTION,
)

DEVICE_STATES: Final = {1: "unknown", 2: "running", 3: "warning", 4: "testing", 5: "down"}
PRINTER_STATES: Final = {1: "other", 2: "unknown", 3: "idle", 4: "printing", 5: "warmup"}
ERROR_BITS: Final = (
    "lowPaper",
    "noPaper",
    "lowToner",
    "noToner",
    "doorOpen",
    "jammed",
    "offline",
    "serviceRequested",
    "inputTrayMissing",
    "outputTrayMissing",
    "markerSupplyMissing",
    "outputNearFull",
    "outputFull",
    "inputTrayEmpty",
    "overduePreventMaint",
)
SEVERITIES: Final = {1: "other", 3: "critical", 4: "warning", 5: "warningBinaryChangeEvent"}
TRAINING_LEVELS: Final = {
    1: "other",
    2: "unknown",
    3: "untrained",
    4: "trained",
    5: "fieldService",
    6: "management",
    7: "noInterventionRequired",
}
GROUPS: Final = {
    1: "other",
    3: "hostResourcesMIBStorageTable",
    4: "hostResourcesMIBDeviceTable",
    5: "generalPrinter",
    6: "cover",
    7: "localization",
    8: "input",
    9: "output",
    10: "marker",
    11: "markerSupplies",
    12: "markerColorant",
    13: "mediaPath",
    14: "channel",
    15: "interpreter",
    16: "consoleDisplayBuffer",
    17: "consoleLights",
    18: "alert",
    30: "finDevice",
    31: "finSupply",
    32: "finSupplyMediaInput",
    33: "finAttribute",
}
_CODE_NAMES: Final = (
    "other",
    "unknown",
    "coverOpen",
    "coverClosed",
    "interlockOpen",
    "interlockClosed",
    "configurationChange",
    "jam",
    "subunitMissing",
    "subunitLifeAlmostOver",
    "subunitLifeOver",
    "subunitAlmostEmpty",
    "subunitEmpty",
    "subunitAlmostFull",
    "subunitFull",
    "subunitNearLimit",
    "subunitAtLimit",
    "subunitOpened",
    "subunitClosed",
    "subunitTurnedOn",
    "subunitTurnedOff",
    "subunitOffline",
    "subunitPowerSaver",
    "subunitWarmingUp",
    "subunitAdded",
    "subunitRemoved",
    "subunitResourceAdded",
    "subunitResourceRemoved",
    "subunitRecoverableFailure",
    "subunitUnrecoverableFailure",
    "subunitRecoverableStorageError",
    "subunitUnrecoverableStorageError",
    "subunitMotorFailure",
    "subunitMemoryExhausted",
    "subunitUnderTemperature",
    "subunitOverTemperature",
    "subunitTimingFailure",
    "subunitThermistorFailure",
)
CODES: Final = {
    **dict(enumerate(_CODE_NAMES, start=1)),
    501: "doorOpen",
    502: "doorClosed",
    503: "powerUp",
    504: "powerDown",
    505: "printerNMSReset",
    506: "printerManualReset",
    507: "printerReadyToPrint",
    801: "inputMediaTrayMissing",
    802: "inputMediaSizeChange",
    803: "inputMediaWeightChange",
    804: "inputMediaTypeChange",
    805: "inputMediaColorChange",
    806: "inputMediaFormPartsChange",
    807: "inputMediaSupplyLow",
    808: "inputMediaSupplyEmpty",
    809: "inputMediaChangeRequest",
    810: "inputManualInputRequest",
    811: "inputTrayPositionFailure",
    812: "inputTrayElevationFailure",
    813: "inputCannotFeedSizeSelected",
    901: "outputMediaTrayMissing",
    902: "outputMediaTrayAlmostFull",
    903: "outputMediaTrayFull",
    904: "outputMailboxSelectFailure",
    1001: "markerFuserUnderTemperature",
    1002: "markerFuserOverTemperature",
    1003: "markerFuserTimingFailure",
    1004: "markerFuserThermistorFailure",
    1005: "markerAdjustingPrintQuality",
    1101: "markerTonerEmpty",
    1102: "markerInkEmpty",
    1103: "markerPrintRibbonEmpty",
    1104: "markerTonerAlmostEmpty",
    1105: "markerInkAlmostEmpty",
    1106: "markerPrintRibbonAlmostEmpty",
    1107: "markerWasteTonerReceptacleAlmostFull",
    1108: "markerWasteInkReceptacleAlmostFull",
    1109: "markerWasteTonerReceptacleFull",
    1110: "markerWasteInkReceptacleFull",
    1111: "markerOpcLifeAlmostOver",
    1112: "markerOpcLifeOver",
    1113: "markerDeveloperAlmostEmpty",
    1114: "markerDeveloperEmpty",
    1115: "markerTonerCartridgeMissing",
    1301: "mediaPathMediaTrayMissing",
    1302: "mediaPathMediaTrayAlmostFull",
    1303: "mediaPathMediaTrayFull",
    1304: "mediaPathCannotDuplexMediaSelected",
    1501: "interpreterMemoryIncrease",
    1502: "interpreterMemoryDecrease",
    1503: "interpreterCartridgeAdded",
    1504: "interpreterCartridgeDeleted",
    1505: "interpreterResourceAdded",
    1506: "interpreterResourceDeleted",
    1507: "interpreterResourceUnavailable",
    1509: "interpreterComplexPageEncountered",
    1801: "alertRemovalOfBinaryChangeEntry",
}

# Codes that report an event (Kyocera files powerUp as a "warning"), never a condition to fix.
_EVENT_CODES: Final = frozenset(
    {
        "coverClosed",
        "interlockClosed",
        "configurationChange",
        "subunitClosed",
        "subunitTurnedOn",
        "subunitAdded",
        "subunitResourceAdded",
        "doorClosed",
        "powerUp",
        "powerDown",
        "printerNMSReset",
        "printerManualReset",
        "printerReadyToPrint",
        "alertRemovalOfBinaryChangeEntry",
    }
)


@dataclass(frozen=True, slots=True)
class PrinterAlert:
    """One prtAlertTable row. ``code`` is the PrtAlertCodeTC name, or ``vendor:<n>`` for a private code."""

    severity: str
    training: str
    group: str
    group_index: int | None
    location: int | None
    code: str
    description: str

    @property
    def key(self) -> str:
        """What makes two rows the same condition from poll to poll (the table's index is reused by devices)."""
        place = "" if self.group_index is None else f"#{self.group_index}"
        return f"{self.group}{place}/{self.code}"

    @property
    def is_condition(self) -> bool:
        """A standing condition (critical, warning), not the record of a one-off event.

        A binary-change alert (a cover closed, power up) or an "other" one (Epson's "Idle") says
        something happened or how the device is; it opens no fault.
        """
        return self.severity in {"critical", "warning"} and self.code not in _EVENT_CODES


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """hrDeviceStatus, hrPrinterStatus, the error bits set, and the alert table, as one poll saw them."""

    device: str | None = None  # hrDeviceStatus name; None: the device does not say
    printer: str | None = None  # hrPrinterStatus name
    errors: tuple[str, ...] = ()  # hrPrinterDetectedErrorState bits set, in bit order
    alerts: tuple[PrinterAlert, ...] = ()

    @property
    def settled(self) -> bool:
        """Nothing wrong to see: running (or silent), no error bit, no standing alert."""
        return self.device in {None, "running"} and not self.errors and not any(a.is_condition for a in self.alerts)


def error_bits(raw: Value | None) -> tuple[str, ...]:
    """The condition names of the bits set in an hrPrinterDetectedErrorState value (bit 0 = MSB of byte 0).

    Bits past overduePreventMaint (14) are reserved; a device setting them is named by number.
    """
    if not isinstance(raw, bytes):
        return ()
    return tuple(
        ERROR_BITS[position] if position < len(ERROR_BITS) else f"bit{position}"
        for position in range(len(raw) * 8)
        if raw[position // 8] & (0x80 >> (position % 8))
    )


def printer_indexes(walked_printer_status: Mapping[str, Value]) -> tuple[str, ...]:
    """The hrDeviceIndex of each printer (the rows of hrPrinterTable), from a walk of hrPrinterStatus."""
    return tuple(oid[len(HR_PRINTER_STATUS) + 1 :] for oid in walked_printer_status)


def status_oids(index: str) -> tuple[str, str, str]:
    """What a poll GETs for the printer at hrDeviceIndex ``index``."""
    return (f"{HR_DEVICE_STATUS}.{index}", f"{HR_PRINTER_STATUS}.{index}", f"{HR_PRINTER_ERROR_STATE}.{index}")


def device_status(scalars: Mapping[str, Value], index: str, alerts: tuple[PrinterAlert, ...]) -> DeviceStatus:
    device_oid, printer_oid, errors_oid = status_oids(index)
    return DeviceStatus(
        device=_named(DEVICE_STATES, scalars.get(device_oid)),
        printer=_named(PRINTER_STATES, scalars.get(printer_oid)),
        errors=error_bits(scalars.get(errors_oid)),
        alerts=alerts,
    )


def alerts_of(walked: Mapping[str, Mapping[str, Value]]) -> tuple[PrinterAlert, ...]:
    """The alert table's rows (walked columns: column -> {OID: value}), in table order; rows without a code skipped."""
    codes = walked.get(ALERT_CODE, {})
    out = []
    for oid, code in codes.items():
        suffix = oid[len(ALERT_CODE) + 1 :]

        def cell(column: str, suffix: str = suffix) -> Value | None:
            return walked.get(column, {}).get(f"{column}.{suffix}")

        if not isinstance(code, int):
            continue
        description = cell(ALERT_DESCRIPTION)
        out.append(
            PrinterAlert(
                severity=_named(SEVERITIES, cell(ALERT_SEVERITY)) or "unknown",
                training=_named(TRAINING_LEVELS, cell(ALERT_TRAINING)) or "unknown",
                group=_named(GROUPS, cell(ALERT_GROUP)) or "unknown",
                group_index=_positive(cell(ALERT_GROUP_INDEX)),
                location=_positive(cell(ALERT_LOCATION)),
                code=CODES.get(code, f"vendor:{code}"),
                description=display_text(description).strip() if isinstance(description, bytes) else "",
            )
        )
    return tuple(out)


def _named(names: Mapping[int, str], value: Value | None) -> str | None:
    if not isinstance(value, int):
        return None
    return names.get(value, f"value:{value}")


def _positive(value: Value | None) -> int | None:
    """Group index and location: -1 (other) and -2 (unknown) say there is none."""
    return value if isinstance(value, int) and value >= 0 else None
