"""The meterd error hierarchy: one root, intermediate bases that say what a caller can do."""

from __future__ import annotations

import asyncio


class MeterdError(Exception):
    """Root of every error meterd raises on purpose.

    The message is one line meant for a person, saying what went wrong and
    what to do next.
    """


class ConfigError(MeterdError):
    """The configuration is missing, unreadable or invalid.

    Attributes:
        file: the configuration file (or "$ENV_VAR" for a value from the environment).
        key: the dotted key path, e.g. ``snmp.targets[3].port``; empty for the whole file.
        reason: what is wrong with it.
        problems: every problem found (``config check`` reports them all); this one first.
    """

    def __init__(self, file: str, key: str, reason: str) -> None:
        self.file = file
        self.key = key
        self.reason = reason
        self.problems: list[ConfigError] = [self]
        super().__init__(": ".join(part for part in (file, key, reason) if part))

    @classmethod
    def of(cls, problems: list[ConfigError]) -> ConfigError:
        """One error for several problems: the first's attributes, every problem a line of the message."""
        first = problems[0]
        error = cls(first.file, first.key, first.reason)
        error.problems = problems
        error.args = ("\n".join(str(problem) for problem in problems),)
        return error


class StorageError(MeterdError):
    """The store cannot be opened, migrated or written."""


class DatabaseUnreachableError(StorageError):
    """The database server did not answer or refused the connection."""


class StateDirectoryError(StorageError):
    """The state directory is missing and cannot be created, or is not writable."""


class AlreadyRunningError(StorageError):
    """Another meterd daemon holds the store."""


class CollectorError(MeterdError):
    """A collector could not read a device.

    Attributes:
        address: the device's HOST:PORT.
    """

    def __init__(self, address: str, message: str) -> None:
        self.address = address
        self.message = message
        super().__init__(f"{address}: {message}")


class DeviceTimeoutError(CollectorError):
    """The device did not answer in time with any of the communities tried."""

    def __init__(self, address: str, communities_tried: int) -> None:
        self.communities_tried = communities_tried
        super().__init__(
            address,
            f"no SNMP answer ({communities_tried} community string(s) tried); check the address, "
            "that SNMP is enabled on the device, and the community",
        )


class ProtocolError(CollectorError):
    """The device answered, but with an SNMP error or something malformed."""


class PayloadError(MeterdError):
    """A reading payload does not match the wire format; it goes to the dead-letter table.

    Attributes:
        reason: a short, fixed reason code (safe as a metric label).
        detail: the human-readable explanation.
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


def raise_if_cancelling() -> None:
    """Re-raise a cancel that an error hid; call it first in a handler that goes on after an error.

    A cancel that breaks an operation mid-way (a store call, a broker connection) can come
    out as that operation's own error, and a TaskGroup (3.11) or an ``async with`` exit
    reports only that error. A handler that logs it and retries would swallow the stop: the
    daemon would then wait out its whole stop grace for that task.

    Raises:
        asyncio.CancelledError: when the running task has been asked to stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
