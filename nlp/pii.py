"""PII masking with typed placeholders, before anything is stored or logged.

``mask_pii(text)`` replaces, in this order of precedence when matches overlap:

* e-mail addresses -> ``[EMAIL]``;
* order, tracking, booking and case numbers introduced by a keyword (订单号, 运单号, 快递单号,
  "order #", "Order number:", "confirmation code", "tracking number", ...) -> ``[ORDER]``; the
  keyword itself stays, it tells what the customer talks about;
* Chinese resident ID numbers (18 characters, valid birth date and ISO 7064 check character) ->
  ``[ID]``;
* bank-card numbers (13-19 digits, contiguous or in groups of four, passing the Luhn check) ->
  ``[CARD]``;
* Chinese mobile numbers (``1[3-9]`` + 9 digits, with spaces/dashes and ``+86``/``0086``) and
  landlines with an area code (``010-12345678``) -> ``[PHONE]``;
* other phone numbers that the ``phonenumbers`` library finds and validates (international
  ``+44 20 7946 0958`` and North-American ``(800) 433-7300``) -> ``[PHONE]``;
* any remaining bare run of 15 or more digits (an order or waybill number without its keyword)
  -> ``[ORDER]``.

Prices, dates, times, quantities, short numbers and flight numbers ("UA 123", "CA1831") are left
alone: every rule needs either a keyword, a checksum, a phone-number plan or 15+ digits.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from nlp._offsets import Tracked, map_span

__all__ = ["Masked", "PiiKind", "PiiSpan", "find_pii", "mask_pii"]


class PiiKind(StrEnum):
    """Kind of personal data; the value is the placeholder written in its place."""

    email = "[EMAIL]"
    order = "[ORDER]"
    id_card = "[ID]"
    bank_card = "[CARD]"
    phone = "[PHONE]"

    @property
    def placeholder(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class PiiSpan:
    """One masked stretch: ``kind`` and its ``[start, end)`` in the masked function's input."""

    kind: PiiKind
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Masked:
    """Masked text, the spans masked in the input, and a per-character map back to the input."""

    text: str
    source: str
    spans: tuple[PiiSpan, ...]
    offsets: tuple[int, ...]
    ends: tuple[int, ...]

    def to_source(self, start: int, end: int) -> tuple[int, int]:
        """Map a span of ``text`` to ``source``; a placeholder maps to the whole masked value."""
        return map_span(self.offsets, self.ends, len(self.source), start, end)


_NOT_ALNUM_BEFORE = r"(?<![0-9A-Za-z])"
_NOT_ALNUM_AFTER = r"(?![0-9A-Za-z])"

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}"
)
_ORDER_ZH = re.compile(
    r"(?:订单编号|订单号码?|订单|运单号码?|快递单号|物流单号|单号|取件码|工单号|售后单号|退款单号)"
    r"(?:是|为)?[\s:：#＃]*"
    r"(?P<id>[A-Za-z0-9][A-Za-z0-9-]{3,39})" + _NOT_ALNUM_AFTER
)
_ORDER_EN = re.compile(
    r"\b(?:order|tracking|waybill|invoice|case|ticket|reference|ref|booking|reservation|"
    r"confirmation|claim|return|refund|rma)"
    r"(?:\s+(?:number|no\.?|num|id|code|reference|ref))?[\s:#]*(?:is\s+)?[:#]?\s*"
    r"(?P<id>[A-Za-z0-9][A-Za-z0-9-]{3,39})" + _NOT_ALNUM_AFTER,
    re.IGNORECASE,
)
_CONFIRMATION_KEYWORD = re.compile(
    r"confirmation|booking|reservation|reference|ref|pnr", re.IGNORECASE
)
_PNR = re.compile(r"\b(?:PNR|record locator)[\s:#]*(?P<id>[A-Z0-9]{6})\b", re.IGNORECASE)
_ID_CARD = re.compile(_NOT_ALNUM_BEFORE + r"\d{17}[\dXx]" + _NOT_ALNUM_AFTER)
_CARD = re.compile(
    _NOT_ALNUM_BEFORE
    + r"(?:\d{13,19}|\d{4}(?:[ -]\d{4}){2,3}(?:[ -]\d{1,3})?|\d{4}[ -]\d{6}[ -]\d{4,5})"
    + _NOT_ALNUM_AFTER
)
_CN_MOBILE = re.compile(
    r"(?<![0-9A-Za-z+])(?:(?:\+|00)86[\s-]?)?1[3-9]\d(?:[\s-]?\d{4}){2}" + _NOT_ALNUM_AFTER
)
_CN_LANDLINE = re.compile(
    r"(?<![0-9A-Za-z+])(?:\(0\d{2,3}\)\s?|0\d{2,3}-)[2-9]\d{6,7}" + _NOT_ALNUM_AFTER
)
_LONG_NUMBER = re.compile(_NOT_ALNUM_BEFORE + r"\d{15,}" + _NOT_ALNUM_AFTER)
_DIGIT = re.compile(r"\d")

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def _valid_id_card(number: str) -> bool:
    body, check = number[:17], number[17].upper()
    year, month, day = int(number[6:10]), int(number[10:12]), int(number[12:14])
    if not (1900 <= year <= 2100 and 1 <= month <= 12 and 1 <= day <= 31):
        return False
    total = sum(int(d) * w for d, w in zip(body, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == check


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _order_id_ok(order_id: str, keyword: str) -> bool:
    digits = len(_DIGIT.findall(order_id))
    if digits >= 5:
        return True
    # Airline and hotel confirmation codes: six letters/digits such as "K7XQ2M".
    return bool(
        _CONFIRMATION_KEYWORD.search(keyword)
        and len(order_id) == 6
        and order_id.isalnum()
        and order_id.upper() == order_id
    )


def _candidates(text: str) -> Iterator[tuple[int, int, int, PiiKind]]:
    """Yield ``(priority, start, end, kind)``; lower priority wins an overlap."""
    for m in _EMAIL.finditer(text):
        yield 0, m.start(), m.end(), PiiKind.email
    for pattern in (_ORDER_ZH, _ORDER_EN):
        for m in pattern.finditer(text):
            if _order_id_ok(m.group("id"), m.group()[: m.start("id") - m.start()]):
                yield 1, m.start("id"), m.end("id"), PiiKind.order
    for m in _PNR.finditer(text):
        yield 1, m.start("id"), m.end("id"), PiiKind.order
    for m in _ID_CARD.finditer(text):
        if _valid_id_card(m.group()):
            yield 2, m.start(), m.end(), PiiKind.id_card
    for m in _CARD.finditer(text):
        digits = re.sub(r"[ -]", "", m.group())
        if 13 <= len(digits) <= 19 and _luhn(digits):
            yield 3, m.start(), m.end(), PiiKind.bank_card
    for pattern in (_CN_MOBILE, _CN_LANDLINE):
        for m in pattern.finditer(text):
            yield 4, m.start(), m.end(), PiiKind.phone
    if len(_DIGIT.findall(text)) >= 7:
        yield from _international_phones(text)
    for m in _LONG_NUMBER.finditer(text):
        yield 6, m.start(), m.end(), PiiKind.order


def _international_phones(text: str) -> Iterator[tuple[int, int, int, PiiKind]]:
    import phonenumbers

    for region in ("US", "CN"):
        for match in phonenumbers.PhoneNumberMatcher(
            text, region, leniency=phonenumbers.Leniency.VALID
        ):
            yield 5, match.start, match.end, PiiKind.phone


def find_pii(text: str) -> list[PiiSpan]:
    """The non-overlapping PII spans of ``text``, in text order."""
    starts: list[int] = []  # accepted spans, sorted by start; they never overlap
    chosen: dict[int, tuple[int, PiiKind]] = {}
    for _, start, end, kind in sorted(_candidates(text), key=lambda c: (c[0], c[1], -c[2])):
        i = bisect.bisect_left(starts, start)
        if i < len(starts) and starts[i] < end:
            continue  # overlaps the next accepted span
        if i > 0 and chosen[starts[i - 1]][0] > start:
            continue  # overlaps the previous accepted span
        starts.insert(i, start)
        chosen[start] = (end, kind)
    return [PiiSpan(chosen[s][1], s, chosen[s][0]) for s in starts]


def mask_pii(text: str) -> Masked:
    """Replace phone numbers, e-mails, ID and bank-card numbers and order numbers in ``text``."""
    spans = find_pii(text)
    tracked = _replace_spans(text, spans)
    return Masked(tracked.text, text, tuple(spans), tuple(tracked.starts), tuple(tracked.ends))


def _replace_spans(text: str, spans: list[PiiSpan]) -> Tracked:
    if not spans:
        return Tracked.identity(text)
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for span in spans:
        pieces.append(text[pos : span.start])
        starts.extend(range(pos, span.start))
        ends.extend(range(pos + 1, span.start + 1))
        placeholder = span.kind.placeholder
        pieces.append(placeholder)
        starts.extend([span.start] * len(placeholder))
        ends.extend([span.end] * len(placeholder))
        pos = span.end
    pieces.append(text[pos:])
    starts.extend(range(pos, len(text)))
    ends.extend(range(pos + 1, len(text) + 1))
    return Tracked("".join(pieces), starts, ends)
