"""The console's languages: gettext catalogues (``locale/*/LC_MESSAGES/messages.po``) and Babel formatting.

The ``.po`` files are the only source a translator edits; they are compiled in memory when
the console starts, so no build step can leave a stale ``.mo`` behind.
"""

from __future__ import annotations

import io
from contextvars import ContextVar
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from importlib.resources import files
from typing import Final

from babel import Locale, dates
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal
from babel.support import Translations

LANGUAGES: Final = ("en", "de", "fr", "tr", "zh_Hans")
DEFAULT: Final = "en"
# What each language calls itself, for the language picker.
NATIVE_NAMES: Final = {code: Locale.parse(code).get_display_name(code) or code for code in LANGUAGES}
current_language: ContextVar[str] = ContextVar("current_language", default=DEFAULT)


@cache
def translations(language: str) -> Translations:
    """The compiled catalogue of ``language`` (English is the msgids themselves)."""
    source = files("daemon.web") / "locale" / language / "LC_MESSAGES" / "messages.po"
    with source.open("rb") as po:
        catalog = read_po(po, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


def negotiate(accept_language: str | None, chosen: str | None = None) -> str:
    """The user's choice if it is one of ours, else the best match of an Accept-Language header, else English.

    Chinese in traditional script (zh-Hant, zh-TW, zh-HK, zh-MO) does not match Simplified Chinese.
    """
    if chosen in LANGUAGES:
        return chosen
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        ranked.append((-quality, position, tag.strip().replace("_", "-").lower()))
    for quality, _, tag in sorted(ranked):
        if quality == 0:
            continue
        primary, _, rest = tag.partition("-")
        if primary == "zh":
            if rest in {"", "cn", "sg", "hans", "hans-cn"}:
                return "zh_Hans"
            continue
        if primary in LANGUAGES:
            return primary
    return DEFAULT


def gettext(message: str) -> str:
    return translations(current_language.get()).ugettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    return translations(current_language.get()).ungettext(singular, plural, count)


def money(amount: Decimal, currency: str) -> str:
    return format_currency(amount, currency, locale=current_language.get())


def number(value: Decimal | int) -> str:
    return format_decimal(value, locale=current_language.get())


def day(value: date | None) -> str:
    return "" if value is None else dates.format_date(value, "medium", locale=current_language.get())


def moment(value: datetime | None) -> str:
    """A stored UTC time, shown in UTC (the store's zone: the same instant for every reader of a page)."""
    if value is None:
        return ""
    return dates.format_datetime(value, "medium", tzinfo=dates.UTC, locale=current_language.get()) + " UTC"
