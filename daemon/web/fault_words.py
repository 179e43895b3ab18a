"""Faults in words: hrDeviceStatus values, hrPrinterDetectedErrorState bits and RFC 3805 alert codes as people say them.

The codes are those collectors.snmp.status decodes (RFC 2790, RFC 3805 / IANA-PRINTER-MIB); the
console shows these words in the reader's language, the CSV, the API and the CLI keep the codes.
Event codes (a cover closed, power up) never open a fault and have no words here.
"""

from __future__ import annotations

from typing import Final

from daemon.web import i18n
from daemon.web.pages import N_

VENDOR_PREFIX: Final = "vendor:"
FAULT_WORDS: Final = {
    # hrDeviceStatus (running is no fault)
    "unknown": N_("Status unknown"),
    "warning": N_("Device reports a warning"),
    "testing": N_("In test mode"),
    "down": N_("Device down"),
    # hrPrinterDetectedErrorState bits
    "lowPaper": N_("Paper low"),
    "noPaper": N_("Out of paper"),
    "lowToner": N_("Toner low"),
    "noToner": N_("Out of toner"),
    "doorOpen": N_("Door open"),
    "jammed": N_("Paper jam"),
    "offline": N_("Offline"),
    "serviceRequested": N_("Service requested"),
    "inputTrayMissing": N_("Input tray missing"),
    "outputTrayMissing": N_("Output tray missing"),
    "markerSupplyMissing": N_("Toner or ink cartridge missing"),
    "outputNearFull": N_("Output tray almost full"),
    "outputFull": N_("Output tray full"),
    "inputTrayEmpty": N_("Input tray empty"),
    "overduePreventMaint": N_("Preventive maintenance overdue"),
    # alert table codes, PrtAlertCodeTC
    "other": N_("Other alert"),
    "coverOpen": N_("Cover open"),
    "interlockOpen": N_("Interlock open"),
    "jam": N_("Paper jam"),
    "subunitMissing": N_("Part missing"),
    "subunitLifeAlmostOver": N_("Part nearly worn out"),
    "subunitLifeOver": N_("Part worn out"),
    "subunitAlmostEmpty": N_("Part almost empty"),
    "subunitEmpty": N_("Part empty"),
    "subunitAlmostFull": N_("Part almost full"),
    "subunitFull": N_("Part full"),
    "subunitNearLimit": N_("Part near its limit"),
    "subunitAtLimit": N_("Part at its limit"),
    "subunitOpened": N_("Part opened"),
    "subunitTurnedOff": N_("Part turned off"),
    "subunitOffline": N_("Part offline"),
    "subunitPowerSaver": N_("Part in power saving"),
    "subunitWarmingUp": N_("Part warming up"),
    "subunitRemoved": N_("Part removed"),
    "subunitResourceRemoved": N_("Resource removed"),
    "subunitRecoverableFailure": N_("Recoverable failure"),
    "subunitUnrecoverableFailure": N_("Failure that needs a repair"),
    "subunitRecoverableStorageError": N_("Recoverable storage error"),
    "subunitUnrecoverableStorageError": N_("Storage failure"),
    "subunitMotorFailure": N_("Motor failure"),
    "subunitMemoryExhausted": N_("Memory full"),
    "subunitUnderTemperature": N_("Too cold"),
    "subunitOverTemperature": N_("Overheating"),
    "subunitTimingFailure": N_("Timing failure"),
    "subunitThermistorFailure": N_("Thermistor failure"),
    "inputMediaTrayMissing": N_("Input tray missing"),
    "inputMediaSizeChange": N_("Paper size changed"),
    "inputMediaWeightChange": N_("Paper weight changed"),
    "inputMediaTypeChange": N_("Paper type changed"),
    "inputMediaColorChange": N_("Paper colour changed"),
    "inputMediaFormPartsChange": N_("Form parts changed"),
    "inputMediaSupplyLow": N_("Paper low"),
    "inputMediaSupplyEmpty": N_("Out of paper"),
    "inputMediaChangeRequest": N_("Paper change requested"),
    "inputManualInputRequest": N_("Manual feed requested"),
    "inputTrayPositionFailure": N_("Input tray position failure"),
    "inputTrayElevationFailure": N_("Input tray lift failure"),
    "inputCannotFeedSizeSelected": N_("Cannot feed the selected paper size"),
    "outputMediaTrayMissing": N_("Output tray missing"),
    "outputMediaTrayAlmostFull": N_("Output tray almost full"),
    "outputMediaTrayFull": N_("Output tray full"),
    "outputMailboxSelectFailure": N_("Output mailbox selection failure"),
    "markerFuserUnderTemperature": N_("Fuser too cold"),
    "markerFuserOverTemperature": N_("Fuser overheating"),
    "markerFuserTimingFailure": N_("Fuser timing failure"),
    "markerFuserThermistorFailure": N_("Fuser thermistor failure"),
    "markerAdjustingPrintQuality": N_("Adjusting print quality"),
    "markerTonerEmpty": N_("Out of toner"),
    "markerInkEmpty": N_("Out of ink"),
    "markerPrintRibbonEmpty": N_("Ribbon used up"),
    "markerTonerAlmostEmpty": N_("Toner low"),
    "markerInkAlmostEmpty": N_("Ink low"),
    "markerPrintRibbonAlmostEmpty": N_("Ribbon almost used up"),
    "markerWasteTonerReceptacleAlmostFull": N_("Waste toner box almost full"),
    "markerWasteInkReceptacleAlmostFull": N_("Waste ink box almost full"),
    "markerWasteTonerReceptacleFull": N_("Waste toner box full"),
    "markerWasteInkReceptacleFull": N_("Waste ink box full"),
    "markerOpcLifeAlmostOver": N_("Drum nearly worn out"),
    "markerOpcLifeOver": N_("Drum worn out"),
    "markerDeveloperAlmostEmpty": N_("Developer almost empty"),
    "markerDeveloperEmpty": N_("Developer empty"),
    "markerTonerCartridgeMissing": N_("Toner cartridge missing"),
    "mediaPathMediaTrayMissing": N_("Paper path tray missing"),
    "mediaPathMediaTrayAlmostFull": N_("Paper path tray almost full"),
    "mediaPathMediaTrayFull": N_("Paper path tray full"),
    "mediaPathCannotDuplexMediaSelected": N_("Cannot print two-sided on the selected paper"),
    "interpreterMemoryIncrease": N_("Interpreter memory increased"),
    "interpreterMemoryDecrease": N_("Interpreter memory decreased"),
    "interpreterCartridgeAdded": N_("Font cartridge added"),
    "interpreterCartridgeDeleted": N_("Font cartridge removed"),
    "interpreterResourceAdded": N_("Interpreter resource added"),
    "interpreterResourceDeleted": N_("Interpreter resource deleted"),
    "interpreterResourceUnavailable": N_("Interpreter resource unavailable"),
    "interpreterComplexPageEncountered": N_("Page too complex"),
}
SEVERITY_WORDS: Final = {"critical": N_("critical"), "warning": N_("warning")}


def fault_in_words(code: str) -> str:
    """``code`` in the current language; a vendor's private code by its number, an unknown one as it is."""
    if code.startswith(VENDOR_PREFIX):
        return i18n.gettext("Vendor alert %(number)s") % {"number": code.removeprefix(VENDOR_PREFIX)}
    words = FAULT_WORDS.get(code)
    return i18n.gettext(words) if words else code


def severity_in_words(severity: str | None) -> str:
    words = SEVERITY_WORDS.get(severity or "")
    return i18n.gettext(words) if words else (severity or "")
