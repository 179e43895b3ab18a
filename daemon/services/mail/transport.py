"""One message through the dealer's relay, or into a .eml file in dry-run mode; the relay's answer returned.

smtplib's ``send_message`` drops the relay's answer to DATA ("250 2.0.0 Ok: queued as 4QX…"), which is the
only trace of the message in the relay's log, so MAIL/RCPT/DATA are spoken here one by one.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from daemon.kernel.errors import MeterdError
from daemon.settings import MailSettings

_TIMEOUT_S: Final = 30.0
_TRANSIENT: Final = range(400, 500)


class MailError(MeterdError):
    """The relay refused or could not be reached; ``transient``: worth another try later."""

    def __init__(self, reason: str, *, transient: bool) -> None:
        super().__init__(reason)
        self.transient = transient


@dataclass(frozen=True, slots=True)
class Outgoing:
    name: str  # the .eml file's name in dry-run mode: "mail-00000012"
    sender: str
    recipients: tuple[str, ...]
    message: bytes


def send(settings: MailSettings, mail: Outgoing) -> str:
    """Blocking, run in a thread. Returns the relay's answer (or the .eml path); raises MailError."""
    if settings.dry_run_dir is not None:
        settings.dry_run_dir.mkdir(parents=True, exist_ok=True)
        path = Path(settings.dry_run_dir) / f"{mail.name}.eml"
        path.write_bytes(mail.message)
        return f"dry run: written to {path}"
    assert settings.host is not None  # callers send only when settings.enabled
    try:
        return _relay(settings, mail)
    except smtplib.SMTPResponseException as err:
        answer = err.smtp_error.decode(errors="replace") if isinstance(err.smtp_error, bytes) else str(err.smtp_error)
        transient = err.smtp_code in _TRANSIENT
        raise MailError(f"{settings.host} answered {err.smtp_code} {answer}", transient=transient) from None
    except smtplib.SMTPRecipientsRefused as err:
        codes = [code for code, _ in err.recipients.values()]
        raise MailError(
            f"{settings.host} refused the recipients: {err.recipients}",
            transient=all(code in _TRANSIENT for code in codes),
        ) from None
    except (OSError, smtplib.SMTPException) as err:
        raise MailError(f"cannot send through {settings.host}:{settings.port}: {err}", transient=True) from None


def _relay(settings: MailSettings, mail: Outgoing) -> str:
    assert settings.host is not None
    context = ssl.create_default_context()
    if settings.security == "tls":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.port, timeout=_TIMEOUT_S, context=context)
    else:
        smtp = smtplib.SMTP(settings.host, settings.port, timeout=_TIMEOUT_S)
    with smtp:
        if settings.security == "starttls":
            smtp.starttls(context=context)
        if settings.user:
            smtp.login(settings.user, settings.password_value())
        smtp.ehlo_or_helo_if_needed()
        code, answer = smtp.mail(mail.sender)
        if code != 250:  # noqa: PLR2004 - SMTP's OK
            raise smtplib.SMTPSenderRefused(code, answer, mail.sender)
        refused = {}
        for recipient in mail.recipients:
            code, answer = smtp.rcpt(recipient)
            if code not in {250, 251}:
                refused[recipient] = (code, answer)
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)
        code, answer = smtp.data(mail.message)
        if code != 250:  # noqa: PLR2004 - SMTP's OK
            raise smtplib.SMTPDataError(code, answer)
        return f"{code} {answer.decode(errors='replace')}"
