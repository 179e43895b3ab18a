"""Backups encrypted at rest: AES-256-GCM in 1 MiB chunks, with a key kept in a file of its own.

A backup holds every customer's data and the users' password and token hashes, so it is
written encrypted; the key (``backup.key_file``, made once with mode 0600) is never in it.

The file is ``MAGIC``, a random 7-byte nonce prefix, then the chunks: each is sealed with
the nonce prefix + its 4-byte index + a byte saying whether it is the last, and the header
as associated data (the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár,
"Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", 2015). So a
changed, reordered, dropped or cut-off chunk, or another key, is refused, and a backup of
any size is sealed and opened without holding it in memory.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from daemon.kernel.errors import MeterdError
from daemon.security.secretbox import load_or_create_key
from daemon.storage.engine import write_private

MAGIC: Final = b"MTRDBAK1"
_PREFIX: Final = 7
_CHUNK: Final = 1 << 20
_TAG: Final = 16
KEY_SETTING: Final = "backup.key_file"


class BackupKeyError(MeterdError):
    """A backup that does not open with this key: another key, or changed since it was made."""


def backup_key(path: Path) -> AESGCM:
    """The backup key at ``path`` (made there, mode 0600, if it is missing)."""
    try:
        return AESGCM(base64.urlsafe_b64decode(load_or_create_key(path, KEY_SETTING)))
    except (binascii.Error, ValueError) as err:
        msg = f"{path} is not a backup key (32 random bytes, base64); restore the right file or set {KEY_SETTING}"
        raise BackupKeyError(msg) from err


def is_encrypted(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(MAGIC)) == MAGIC


def encrypt_file(plain: Path, sealed: Path, key: AESGCM) -> None:
    """Write ``plain`` encrypted to ``sealed`` (mode 0600)."""
    header = MAGIC + os.urandom(_PREFIX)
    write_private(sealed, header)
    with plain.open("rb") as source, sealed.open("ab") as target:
        for index, chunk, last in _chunks(source, _CHUNK):
            target.write(key.encrypt(_nonce(header, index, last=last), chunk, header))


def decrypt_file(sealed: Path, plain: Path, key: AESGCM) -> None:
    """Write ``sealed`` decrypted to ``plain`` (mode 0600).

    Raises:
        BackupKeyError: not this key's, or changed, reordered or cut short since it was made.
    """
    write_private(plain, b"")
    with sealed.open("rb") as source, plain.open("ab") as target:
        header = source.read(len(MAGIC) + _PREFIX)
        for index, chunk, last in _chunks(source, _CHUNK + _TAG):
            try:
                target.write(key.decrypt(_nonce(header, index, last=last), chunk, header))
            except InvalidTag as err:
                msg = (
                    f"{sealed} does not open with the backup key ({KEY_SETTING}): it was made with another "
                    "key, or changed since; use the key it was made with, or another backup"
                )
                raise BackupKeyError(msg) from err


def _nonce(header: bytes, index: int, *, last: bool) -> bytes:
    return header[len(MAGIC) :] + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _chunks(source: BinaryIO, size: int) -> Iterator[tuple[int, bytes, bool]]:
    """The file's chunks with their index and whether each is the last (an empty file: one empty last chunk)."""
    index, chunk = 0, source.read(size)
    while True:
        following = source.read(size)
        yield index, chunk, not following
        if not following:
            return
        index, chunk = index + 1, following
