"""Inverse text normalisation: spoken number words as people write them ("twenty five percent" -> "25%").

Rule-based and small, for the common cases of English transcripts:

| spoken | written |
| --- | --- |
| cardinals of ten and more, and any with a scale word | `twenty five` -> `25`, `three hundred and two` -> `302`, `forty thousand` -> `40,000` |
| cardinals under ten | stay words (`three dogs`), as style guides write them, except in the forms below |
| ordinals from tenth on, and any after a month | `twenty first` -> `21st`, `march third` -> `march 3rd` |
| years | `nineteen eighty four` -> `1984`, `nineteen oh five` -> `1905`, `two thousand and ten` -> `2010` |
| times | `ten thirty a m` -> `10:30 a.m.`, `five p m` -> `5 p.m.`, `at eleven fifteen` -> `at 11:15`, `six o'clock` -> `6 o'clock` |
| money | `twenty dollars` -> `$20`, `five dollars and fifty cents` -> `$5.50`, `ten pounds` -> `£10` |
| percentages | `fifty percent` / `fifty per cent` -> `50%` |
| decimals | `three point one four` -> `3.14` |
| digit strings (codes, numbers) | three or more digits said one by one: `nine one six` -> `916`, `four oh two one` -> `4021`; two after a cue word (`room four two` -> `room 42`) |

No well-kept library covers this without heavy native dependencies (NeMo's needs Pynini
and OpenFst), so the rules live here. `find_numbers` returns spans of the word list;
`apply_itn` gives one display string per word, the written number on the first word of a
span and "" on the others, so word timestamps still cover the span. A span never crosses a
word followed by a punctuation mark (`marks`), except as its last word.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ONES = {w: i for i, w in enumerate("zero one two three four five six seven eight nine".split())}
TEENS = {w: i + 10 for i, w in enumerate("ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split())}
TENS = {w: (i + 2) * 10 for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
SCALES = {"thousand": 1000, "million": 1_000_000, "billion": 1_000_000_000}
ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9,
            "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14, "fifteenth": 15, "sixteenth": 16,
            "seventeenth": 17, "eighteenth": 18, "nineteenth": 19, "twentieth": 20, "thirtieth": 30, "fortieth": 40, "fiftieth": 50,
            "sixtieth": 60, "seventieth": 70, "eightieth": 80, "ninetieth": 90}
SCALE_ORDINALS = {"hundredth": 100, "thousandth": 1000, "millionth": 1_000_000}
MONTHS = frozenset("january february march april may june july august september october november december".split())
DIGIT_CUES = frozenset("number code room extension flight gate channel line pin zip platform apartment suite".split())
CURRENCIES = {"dollar": "$", "dollars": "$", "pound": "£", "pounds": "£", "euro": "€", "euros": "€"}
NUMBER_WORDS = frozenset([*ONES, *TEENS, *TENS, *SCALES, "hundred"])


@dataclass(frozen=True)
class Span:
    start: int
    end: int  # exclusive
    text: str


@dataclass(frozen=True)
class _Number:
    value: int
    end: int
    words: int  # number words consumed
    scaled: bool  # holds "hundred" or a scale word


def _under_thousand(words: Sequence[str], i: int, limit: int) -> _Number | None:
    """`[1..99] hundred [and] [tens ones | teens | ones]`, `tens [ones]`, `teens`, `ones`."""
    j, value, scaled = i, 0, False
    head = _below_hundred(words, j, limit)
    if head is not None and 0 < head[0] < 100 and head[1] < limit and words[head[1]] == "hundred":  # "five hundred", "fifteen hundred"
        value, j, scaled = head[0] * 100, head[1] + 1, True
        if j + 1 < limit and words[j] == "and" and (words[j + 1] in ONES or words[j + 1] in TEENS or words[j + 1] in TENS):
            j += 1
    rest = _below_hundred(words, j, limit)
    if rest is not None and not (scaled and rest[0] == 0):
        value, j = value + rest[0], rest[1]
    if j == i:
        return None
    return _Number(value, j, j - i, scaled)


def _below_hundred(words: Sequence[str], i: int, limit: int) -> tuple[int, int] | None:
    if i >= limit:
        return None
    w = words[i]
    if w in TENS:
        if i + 1 < limit and words[i + 1] in ONES and words[i + 1] != "zero":
            return TENS[w] + ONES[words[i + 1]], i + 2
        return TENS[w], i + 1
    if w in TEENS:
        return TEENS[w], i + 1
    if w in ONES:
        return ONES[w], i + 1
    return None


def parse_cardinal(words: Sequence[str], i: int, limit: int | None = None) -> _Number | None:
    """The longest cardinal starting at `words[i]` ("three hundred and two thousand five")."""
    limit = len(words) if limit is None else limit
    total, j, scaled, last_scale = 0, i, False, None
    while True:
        part = _under_thousand(words, j, limit)
        if part is None:
            break
        scale = SCALES.get(words[part.end]) if part.end < limit else None
        if scale is not None and (last_scale is None or scale < last_scale) and part.value > 0:
            total += part.value * scale
            j, scaled, last_scale = part.end + 1, True, scale
            if j + 1 < limit and words[j] == "and" and (words[j + 1] in ONES or words[j + 1] in TEENS or words[j + 1] in TENS):
                j += 1
            continue
        if last_scale is not None and part.value >= last_scale:
            break
        total += part.value
        j, scaled = part.end, scaled or part.scaled
        break
    if j == i:
        return None
    if words[j - 1] == "and":
        j -= 1
    return _Number(total, j, j - i, scaled)


def _ordinal_suffix(n: int) -> str:
    if 10 <= n % 100 <= 20:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def _grouped(n: int) -> str:
    return f"{n:,}" if n >= 10_000 else str(n)


class _Scanner:
    def __init__(self, words: Sequence[str], marks: Sequence[str] | None) -> None:
        self.words = words
        self.n = len(words)
        self.marks = marks

    def limit(self, i: int) -> int:
        """Spans starting at `i` end at the first word that carries a mark (inclusive)."""
        if self.marks is None:
            return self.n
        for j in range(i, self.n):
            if self.marks[j]:
                return j + 1
        return self.n

    def word(self, j: int, limit: int) -> str:
        return self.words[j] if j < limit else ""

    def match(self, i: int) -> Span | None:
        limit = self.limit(i)
        for rule in (self.time, self.money, self.percent, self.decimal, self.digits, self.year, self.ordinal, self.cardinal):
            span = rule(i, limit)
            if span is not None:
                return span
        return None

    def time(self, i: int, limit: int) -> Span | None:
        hour = _below_hundred(self.words, i, limit)
        if hour is None or not 1 <= hour[0] <= 12:
            return None
        j, minutes = hour[1], None
        following = self.word(j, limit)
        if following == "o'clock":
            return Span(i, j + 1, f"{hour[0]} o'clock")
        if following == "oh" and self.word(j + 1, limit) in ONES:
            minutes, j = ONES[self.words[j + 1]], j + 2
        else:
            rest = _below_hundred(self.words, j, limit)
            if rest is not None and 10 <= rest[0] < 60:
                minutes, j = rest
        meridiem = None
        if self.word(j, limit) in ("a", "p") and self.word(j + 1, limit) == "m":
            meridiem, end = f"{self.words[j]}.m.", j + 2
        elif self.word(j, limit) in ("am", "pm"):
            meridiem, end = f"{self.words[j][0]}.m.", j + 1
        else:
            end = j
        clock = f"{hour[0]}:{minutes:02d}" if minutes is not None else str(hour[0])
        if meridiem is not None:
            return Span(i, end, f"{clock} {meridiem}")
        if minutes is not None and i > 0 and self.words[i - 1] == "at" and self.word(j, limit) not in NUMBER_WORDS:
            return Span(i, end, clock)
        return None

    def money(self, i: int, limit: int) -> Span | None:
        amount = parse_cardinal(self.words, i, limit)
        if amount is None or self.word(amount.end, limit) not in CURRENCIES:
            return None
        symbol, j = CURRENCIES[self.words[amount.end]], amount.end + 1
        if symbol == "$" and self.word(j, limit) == "and":
            cents = parse_cardinal(self.words, j + 1, limit)
            if cents is not None and cents.value < 100 and self.word(cents.end, limit) in ("cent", "cents"):
                return Span(i, cents.end + 1, f"${amount.value:,}.{cents.value:02d}")
        return Span(i, j, f"{symbol}{amount.value:,}")

    def percent(self, i: int, limit: int) -> Span | None:
        amount = self._decimal_or_cardinal(i, limit)
        if amount is None:
            return None
        text, j = amount
        if self.word(j, limit) == "percent":
            return Span(i, j + 1, f"{text}%")
        if self.word(j, limit) == "per" and self.word(j + 1, limit) == "cent":
            return Span(i, j + 2, f"{text}%")
        return None

    def _decimal_or_cardinal(self, i: int, limit: int) -> tuple[str, int] | None:
        decimal = self.decimal(i, limit)
        if decimal is not None:
            return decimal.text, decimal.end
        number = parse_cardinal(self.words, i, limit)
        return (_grouped(number.value), number.end) if number is not None else None

    def decimal(self, i: int, limit: int) -> Span | None:
        whole = parse_cardinal(self.words, i, limit)
        if whole is None or self.word(whole.end, limit) != "point":
            return None
        j, digits = whole.end + 1, ""
        while self.word(j, limit) in ONES or (digits and self.word(j, limit) == "oh"):
            digits += str(ONES.get(self.words[j], 0))
            j += 1
        return Span(i, j, f"{_grouped(whole.value)}.{digits}") if digits else None

    def digits(self, i: int, limit: int) -> Span | None:
        j, digits = i, ""
        while j < limit and (self.words[j] in ONES or (digits and self.words[j] == "oh")):
            digits += str(ONES.get(self.words[j], 0))
            j += 1
        cued = i > 0 and self.words[i - 1] in DIGIT_CUES
        if len(digits) >= 3 or (len(digits) == 2 and cued):
            return Span(i, j, digits)
        if cued and digits and (j >= limit or self.words[j] not in NUMBER_WORDS):
            return Span(i, j, digits)
        return None

    def year(self, i: int, limit: int) -> Span | None:
        century = _below_hundred(self.words, i, limit)
        if century is None or not 13 <= century[0] <= 20 or self.words[i] in ONES:
            return None
        j = century[1]
        if self.word(j, limit) == "oh" and self.word(j + 1, limit) in ONES and self.words[j + 1] != "zero":
            return Span(i, j + 2, f"{century[0]}0{ONES[self.words[j + 1]]}")
        rest = _below_hundred(self.words, j, limit)
        if rest is not None and rest[0] >= 10 and self.word(rest[1], limit) not in NUMBER_WORDS | {"hundred"}:
            return Span(i, rest[1], f"{century[0]}{rest[0]:02d}")
        return None

    def ordinal(self, i: int, limit: int) -> Span | None:
        after_month = i > 0 and self.words[i - 1] in MONTHS
        w = self.words[i]
        if w in ORDINALS and (ORDINALS[w] >= 10 or after_month):
            return Span(i, i + 1, f"{ORDINALS[w]}{_ordinal_suffix(ORDINALS[w])}")
        head = parse_cardinal(self.words, i, limit)
        if head is None or head.end >= limit:
            return None
        last = self.words[head.end]
        if last in SCALE_ORDINALS and head.value < 1000:
            value = head.value * SCALE_ORDINALS[last]
            return Span(i, head.end + 1, f"{_grouped(value)}{_ordinal_suffix(value)}")
        if last in ORDINALS and ORDINALS[last] < 10 and head.value >= 20 and head.value % 10 == 0:
            value = head.value + ORDINALS[last]
            return Span(i, head.end + 1, f"{_grouped(value)}{_ordinal_suffix(value)}")
        return None

    def cardinal(self, i: int, limit: int) -> Span | None:
        number = parse_cardinal(self.words, i, limit)
        if number is None or (number.value < 10 and not number.scaled) or (number.words == 1 and self.words[i] == "zero"):
            return None
        return Span(i, number.end, _grouped(number.value))


def find_numbers(words: Sequence[str], marks: Sequence[str] | None = None) -> list[Span]:
    """Spans of `words` (normalised) to write as numbers, left to right, never overlapping."""
    scanner = _Scanner(words, marks)
    spans, i = [], 0
    while i < len(words):
        span = scanner.match(i) if words[i] in NUMBER_WORDS or words[i] in ORDINALS else None
        if span is not None:
            spans.append(span)
            i = span.end
        else:
            i += 1
    return spans


def apply_itn(words: Sequence[str], marks: Sequence[str] | None = None) -> list[str]:
    """One display string per word: the written number on a span's first word, "" on the rest."""
    out = list(words)
    for span in find_numbers(words, marks):
        out[span.start] = span.text
        for k in range(span.start + 1, span.end):
            out[k] = ""
    return out
