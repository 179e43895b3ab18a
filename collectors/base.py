"""The sink interface collectors put their readings into (the reading model is in daemon.kernel.reading)."""

from __future__ import annotations

from typing import Protocol

from daemon.kernel.errors import PayloadError
from daemon.kernel.reading import Reading


class ReadingSink(Protocol):
    """Where collectors put what they read (telegraf's accumulator)."""

    async def emit(self, readings: list[Reading]) -> object:
        """Store a batch; returns once it is committed. Raises StorageError when it is not."""
        ...

    async def reject(self, raw: bytes, *, origin: str, source: str, error: PayloadError) -> None:
        """Keep input that failed validation (dead-letter table), committed before returning."""
        ...
