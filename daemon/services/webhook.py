"""POSTing JSON to an operator's URL (anomaly hooks, customer notices): one place, one timeout, one failure rule."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Final

_TIMEOUT_S: Final = 10.0


def post_json(url: str, payload: bytes, *, timeout_s: float = _TIMEOUT_S) -> None:
    """Blocking; run it in a thread.

    Raises:
        RuntimeError: the URL answered outside 2xx (naming the status); OSError: it could not be reached.
    """
    request = urllib.request.Request(  # noqa: S310 - the operator's own URL
        url, data=payload, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as err:
        status = err.code
    if status >= 300:  # noqa: PLR2004 - HTTP success range
        msg = f"{url} answered HTTP {status}"
        raise RuntimeError(msg)
