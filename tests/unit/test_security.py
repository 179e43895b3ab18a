"""The password policy, the role table and the secret box, without a store."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.security import roles
from daemon.security.passwords import PasswordPolicyError, check_policy, hash_secret, verify_secret
from daemon.security.roles import CUSTOMER, PERMISSIONS, ROLES, allowed, may_delegate
from daemon.security.secretbox import SecretBox, SecretKeyError


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short one", "too short: at least 12"),
        ("x" * 257, "too long"),
        ("password1234", "one of the most common passwords"),
        ("Password1234!", "too easy to guess"),  # a common word dressed up: what breaches are full of
        ("zxcvbnm,./asdfgh", "straight rows of keys"),  # a keyboard walk
        ("aaaaaaaaaaaaaaaa", "too easy to guess"),
        ("petra.kaufmann1", "too easy to guess"),  # her own name and login
    ],
)
def test_weak_passwords_are_refused_with_the_reason(password: str, reason: str) -> None:
    with pytest.raises(PasswordPolicyError, match=reason):
        check_policy(password, personal=["petra.kaufmann", "Petra Kaufmann"])


@pytest.mark.parametrize(
    "password", ["alice-weber-2026", "Weber.Alice!1990", "aliceweber_2026", "alice.weber@2026!", "print-partner-alice"]
)
def test_the_users_own_login_name_and_email_with_digits_are_refused(password: str) -> None:
    # The README promises it; zxcvbn alone priced the separators in "alice-weber-2026" at 10^12 guesses.
    with pytest.raises(PasswordPolicyError, match="too easy to guess"):
        check_policy(password, personal=["alice", "Alice Weber", "alice.weber@print-partner.example"])


@pytest.mark.parametrize("password", ["correct horse battery staple", "printer-room-7-blue", "Tr0ub4dor&3xyz"])
def test_long_unguessable_passwords_pass_without_composition_rules(password: str) -> None:
    check_policy(password, personal=["petra.kaufmann"])


def test_hashes_verify_only_their_secret_and_a_damaged_hash_matches_nothing() -> None:
    hashed = hash_secret("correct horse battery staple")
    assert hashed.startswith("$argon2id$")
    assert verify_secret(hashed, "correct horse battery staple")
    assert not verify_secret(hashed, "correct horse battery stapler")
    assert not verify_secret("not a hash", "correct horse battery staple")


def test_the_documented_role_table_is_the_one_in_code() -> None:
    documented = {}
    for line in (roles.__doc__ or "").splitlines():
        cells = [cell.strip() for cell in line.split("|")]
        if len(cells) > 6 and ("." in cells[1] or cells[1] in {"self", "portal"}):
            columns = (*ROLES, CUSTOMER)
            documented[cells[1]] = {role for role, cell in zip(columns, cells[2:7], strict=True) if cell == "x"}
    assert documented == {permission: set(held) for permission, held in PERMISSIONS.items()}


def test_a_token_never_does_more_than_its_issuer() -> None:
    assert may_delegate("admin", "viewer")
    assert may_delegate("billing", "viewer")
    assert not may_delegate("technician", "viewer")  # a viewer reads invoices, a technician does not
    assert not may_delegate("billing", "admin")
    assert all(may_delegate(role, role) for role in ROLES)
    assert not allowed("viewer", "no.such.permission")


def test_secrets_open_only_with_their_key(tmp_path: Path) -> None:
    box = SecretBox(tmp_path / "keys" / "secret.key")
    sealed = box.seal("JBSWY3DPEHPK3PXP")
    assert "JBSWY3DPEHPK3PXP" not in sealed
    assert box.open(sealed) == "JBSWY3DPEHPK3PXP"
    assert (tmp_path / "keys" / "secret.key").stat().st_mode & 0o777 == 0o600
    assert SecretBox(tmp_path / "keys" / "secret.key").open(sealed) == "JBSWY3DPEHPK3PXP"  # the same key, reread
    with pytest.raises(SecretKeyError, match="is it the key this store was set up with"):
        SecretBox(tmp_path / "other.key").open(sealed)
