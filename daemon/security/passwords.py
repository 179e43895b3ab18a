"""Password hashing (argon2id) and the password policy.

The policy follows NIST SP 800-63B rather than composition rules: at least 12
characters, not one of the common passwords bundled with zxcvbn (30,000 of them), and
not guessable by zxcvbn's pattern search in fewer than 10^10 guesses (a common word
with digits and a symbol tacked on, keyboard walks, repeats, dates, the login or name).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Final, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from daemon.kernel.errors import MeterdError

MIN_LENGTH: Final = 12
MAX_LENGTH: Final = 256  # argon2 takes anything, but a megabyte "password" is an attack on the CPU
MIN_GUESSES_LOG10: Final = 10.0
_SEPARATORS: Final = ("", "-", ".", "_", " ")
# Each argon2id hash holds 64 MiB and a core for a quarter second: at most four at once bound the memory a
# login flood takes, and one core is always left to the event loop, so the API keeps answering meanwhile.
HASH_THREADS: Final = max(1, min(4, (os.cpu_count() or 2) - 1))
_hasher = PasswordHasher()
_pool = ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="argon2")
T = TypeVar("T")


class PasswordPolicyError(MeterdError):
    """A password the policy refuses; the message says why and what would do."""


@cache
def _common() -> frozenset[str]:
    return frozenset(FREQUENCY_LISTS["passwords"])


def check_policy(password: str, *, personal: Sequence[str] = ()) -> None:
    """Refuse a weak password with the reason.

    Raises:
        PasswordPolicyError: too short, too long, common, or guessable (``personal``: login, name, e-mail).
    """
    if len(password) < MIN_LENGTH:
        msg = f"too short: at least {MIN_LENGTH} characters (a few unrelated words make a good one)"
        raise PasswordPolicyError(msg)
    if len(password) > MAX_LENGTH:
        msg = f"too long: at most {MAX_LENGTH} characters"
        raise PasswordPolicyError(msg)
    if password.lower() in _common():
        msg = "one of the most common passwords; choose another"
        raise PasswordPolicyError(msg)
    verdict = zxcvbn(password, user_inputs=personal_words(personal))
    if verdict["guesses_log10"] < MIN_GUESSES_LOG10:
        hint = verdict["feedback"]["warning"] or "it follows a pattern that is guessed early"
        msg = f"too easy to guess: {hint.rstrip('.').lower()}; a few unrelated words make a better one"
        raise PasswordPolicyError(msg)


def personal_words(personal: Sequence[str]) -> list[str]:
    """What zxcvbn should know about the user: the login, name and e-mail, their words, and those words joined.

    zxcvbn matches a user input only as one piece and prices a separator between two pieces as
    brute force, so "alice-weber-2026" passed for Alice Weber: the words joined with the usual
    separators, in both orders, are inputs of their own.
    """
    found = {"meterd"}
    for text in personal:
        local, _, domain = text.lower().partition("@")  # an e-mail: its local part and each domain label too
        for piece in (text.lower(), local, *domain.split(".")):
            words = re.findall(r"[^\W_]+", piece)
            found.update([piece, *words])
            for order in (words, words[::-1]):
                found.update(separator.join(order) for separator in _SEPARATORS)
    return sorted(word for word in found if word)


def hash_secret(secret: str) -> str:
    """An argon2id hash of a password or a recovery code."""
    return _hasher.hash(secret)


def verify_secret(hashed: str, secret: str) -> bool:
    """Whether ``secret`` matches ``hashed``; a damaged hash matches nothing."""
    try:
        return _hasher.verify(hashed, secret)
    except (VerificationError, InvalidHashError):
        return False


async def off_loop(work: Callable[[], T]) -> T:
    """Run slow hashing in the bounded hashing pool, so a flood of logins never stalls the event loop.

    argon2 releases the GIL while it hashes; the rest of the API keeps answering meanwhile.
    """
    return await asyncio.get_running_loop().run_in_executor(_pool, work)
