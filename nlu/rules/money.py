"""Money amounts with a currency, in English and Chinese.

Found shapes, each needing a currency next to the number:

- a sign before the number: ``$12.50``, ``US$5``, ``HK$80``, ``€30``, ``£5``, ``¥100``, ``￥100``;
- a code before or after: ``RMB 200``, ``12.50 USD``, ``usd 7``;
- a word after: ``30 euros``, ``5 bucks``, ``100 yuan``, ``100元``, ``100块``, ``20美元``,
  ``1.5万元`` (15,000 CNY);
- a Chinese numeral before ``元``, ``块钱`` or another currency word: ``一百元``, ``两千五百元``,
  ``三块钱``. A Chinese numeral before a bare ``块`` is skipped, because ``一块`` also means
  "together" and ``三块`` also counts pieces.

Amounts take thousands separators (``1,299.99``) and at most two decimals. The value is the
amount and an ISO 4217 code, ``12.50 USD`` or ``100 CNY``: whole amounts have no decimals and
others have two. Not supported: amounts without a currency, ``k`` and ``m`` suffixes
(``$5k``), ranges (``$10-20``), negative amounts, and ``5块5`` (5.50 CNY).
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation

from nlu.rules.base import make_entity
from nlu.rules.numerals import CHINESE_NUMERAL_CHARS, parse_chinese_number
from nlu.types import Entity

logger = logging.getLogger(__name__)

_CURRENCY_CODES = ("USD", "EUR", "GBP", "CNY", "RMB", "JPY", "HKD", "CAD", "AUD")

# The amount must start a number and is matched possessively, so a long digit run is read
# once instead of once per start position.
_AMOUNT = (
    r"(?<![\d.])(?<!\d,)"
    r"(?P<amount>(?>\d{1,3}(?:,\d{3})++|\d++)(?:\.\d{1,2})?+)"
    r"(?!\d|[.,]\d)"
)
_CODE = r"(?P<code>" + "|".join(_CURRENCY_CODES) + r")(?![A-Za-z])"
_SIGN_BEFORE = re.compile(
    r"(?<![A-Za-z0-9])(?P<sign>US\$|HK\$|C\$|A\$|\$|€|£|¥|￥) ?" + _AMOUNT, re.IGNORECASE
)
_CODE_BEFORE = re.compile(r"(?<![A-Za-z])" + _CODE + r" ?" + _AMOUNT, re.IGNORECASE)
_WORD_AFTER = re.compile(
    r"(?<![A-Za-z])" + _AMOUNT + r"(?P<wan> ?[万萬])? ?"
    r"(?:(?P<word>dollars?|bucks?|euros?|pounds?|yuan|quid)(?![A-Za-z])|"
    + _CODE
    + r"|(?P<chinese>元|块钱|块|圆|人民币|美元|美金|欧元|英镑|日元|港币|港元)(?![旦素宵件组]))",
    re.IGNORECASE,
)
_CHINESE_NUMERAL_BEFORE = re.compile(
    r"(?<![" + CHINESE_NUMERAL_CHARS + r"])(?P<numeral>[" + CHINESE_NUMERAL_CHARS + r"]++)"
    r"(?P<chinese>元|块钱|圆|人民币|美元|美金|欧元|英镑|日元|港币|港元)(?![旦素宵件组])"
)

_CHINESE_CURRENCIES = {
    "元": "CNY", "块钱": "CNY", "块": "CNY", "圆": "CNY", "人民币": "CNY",
    "美元": "USD", "美金": "USD", "欧元": "EUR", "英镑": "GBP", "日元": "JPY",
    "港币": "HKD", "港元": "HKD",
}  # fmt: skip
_WORD_CURRENCIES = {"euro": "EUR", "pound": "GBP", "quid": "GBP", "yuan": "CNY"}
_SIGN_CURRENCIES = {"us$": "USD", "hk$": "HKD", "c$": "CAD", "a$": "AUD", "€": "EUR", "£": "GBP"}


class MoneyExtractor:
    """Find money amounts with their currency.

    Args:
        dollar_currency: ISO 4217 code for a bare ``$`` and for "dollars" and "bucks".
        yen_currency: ISO 4217 code for ``¥`` and ``￥``, which both yuan and yen use.

    Raises:
        ValueError: If a currency is not three upper-case letters.
    """

    name = "money"
    entity_types = frozenset({"money"})

    def __init__(self, dollar_currency: str = "USD", yen_currency: str = "CNY") -> None:
        for setting, code in (("dollar_currency", dollar_currency), ("yen_currency", yen_currency)):
            if not re.fullmatch(r"[A-Z]{3}", code):
                raise ValueError(
                    f"Invalid {setting} {code!r}: expected an ISO 4217 code such as 'USD'."
                )

        self.dollar_currency = dollar_currency
        self.yen_currency = yen_currency

    def extract(self, text: str, folded: str, reference_time: datetime) -> list[Entity]:
        """Return every money amount in ``text``; overlapping shapes are left to the merge."""
        found: list[tuple[int, int, str]] = []
        for match in _SIGN_BEFORE.finditer(folded):
            currency = self._sign_currency(match["sign"])
            found.append((match.start(), match.end(), _format(match["amount"], currency)))
        for match in _CODE_BEFORE.finditer(folded):
            found.append((match.start(), match.end(), _format(match["amount"], _code(match))))
        for match in _WORD_AFTER.finditer(folded):
            multiplier = 10_000 if match["wan"] else 1
            value = _format(match["amount"], self._suffix_currency(match), multiplier)
            found.append((match.start(), match.end(), value))
        for match in _CHINESE_NUMERAL_BEFORE.finditer(folded):
            amount = parse_chinese_number(match["numeral"])
            if amount is not None:
                currency = _CHINESE_CURRENCIES[match["chinese"]]
                found.append((match.start(), match.end(), _format(str(amount), currency)))

        return [
            make_entity(text, start, end, "money", value, self.name)
            for start, end, value in found
            if value
        ]

    def _sign_currency(self, sign: str) -> str:
        if sign == "$":
            return self.dollar_currency
        if sign in ("¥", "￥"):
            return self.yen_currency
        return _SIGN_CURRENCIES[sign.lower()]

    def _suffix_currency(self, match: re.Match[str]) -> str:
        if match["chinese"]:
            return _CHINESE_CURRENCIES[match["chinese"]]
        if match["code"]:
            return _code(match)
        word = match["word"].lower().removesuffix("s")
        return _WORD_CURRENCIES.get(word, self.dollar_currency)


def _code(match: re.Match[str]) -> str:
    code = match["code"].upper()
    return "CNY" if code == "RMB" else code


def _format(amount: str, currency: str, multiplier: int = 1) -> str:
    """Return ``"<amount> <currency>"``, or an empty string when ``amount`` is no number."""
    try:
        number = Decimal(amount.replace(",", "")) * multiplier
    except InvalidOperation:
        logger.warning("Skipped a money amount that Decimal cannot read")
        return ""
    if number == number.to_integral_value():
        return f"{int(number)} {currency}"
    return f"{number:.2f} {currency}"
