"""Text normalisation shared by the corpus builder, the language models and evaluation.

Every transcript the project trains on or scores is reduced to lowercase letters, the
apostrophe and single spaces. Digits are spelled out (as single words per digit group),
so a sentence never has to be dropped for holding a number.
"""

from __future__ import annotations

import re
import unicodedata

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def spell_number(n: int) -> str:
    """Spell a non-negative integer below 10**12 in English words."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + spell_number(rest))
    for scale, name in ((10**9, "billion"), (10**6, "million"), (1000, "thousand")):
        if n >= scale:
            head, rest = divmod(n, scale)
            return spell_number(head) + " " + name + ("" if rest == 0 else " " + spell_number(rest))
    raise ValueError(f"number too large to spell: {n}")


def _spell_digits(match: re.Match[str]) -> str:
    digits = match.group(0)
    if len(digits) > 12:
        return " ".join(_ONES[int(d)] for d in digits)
    return " " + spell_number(int(digits)) + " "


def normalize_text(text: str) -> str:
    """Lowercase letters, apostrophe and single spaces; digits spelled out; accents folded."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.lower().replace("\u2019", "'").replace("`", "'")
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)
    text = re.sub(r"\d+", _spell_digits, text)
    text = re.sub(r"[-_/]", " ", text)
    text = re.sub(r"[^a-z' ]", " ", text)
    # An apostrophe only survives inside a word ("don't", "o'clock"), not as a quote mark.
    text = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", text)
    return " ".join(text.split())
