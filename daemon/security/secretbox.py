"""Secrets at rest (TOTP seeds …), encrypted with a key kept in a file of its own, never in the database.

A stolen database alone does not give away second factors; the key file is made once
(mode 0600) beside the store, or where ``api.secret_key_file`` says.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from daemon.kernel.errors import MeterdError


class SecretKeyError(MeterdError):
    """The key file is missing, unreadable, or is not the key the secrets were encrypted with."""


class SecretBox:
    def __init__(self, key_file: Path) -> None:
        self._key_file = key_file
        self._fernet: Fernet | None = None

    def _box(self) -> Fernet:
        if self._fernet is None:
            self._fernet = Fernet(load_or_create_key(self._key_file, "api.secret_key_file"))
        return self._fernet

    def seal(self, secret: str) -> str:
        return self._box().encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._box().decrypt(sealed.encode()).decode()
        except InvalidToken as err:
            msg = f"a stored secret does not open with {self._key_file}: is it the key this store was set up with?"
            raise SecretKeyError(msg) from err


def load_or_create_key(path: Path, setting: str) -> bytes:
    """The key in ``path`` (32 random bytes, URL-safe base64), made there once with mode 0600 if missing.

    Raises:
        SecretKeyError: it cannot be read or made (naming ``setting``, where to point it elsewhere).
    """
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    except OSError as err:
        msg = f"cannot read the key {path}: {err.strerror}; check its owner and mode"
        raise SecretKeyError(msg) from err
    key = Fernet.generate_key()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # made by another process meanwhile: use that one
        return path.read_bytes().strip()
    except OSError as err:
        msg = f"cannot create the key {path}: {err.strerror}; set {setting} to a writable place"
        raise SecretKeyError(msg) from err
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key)
    return key
