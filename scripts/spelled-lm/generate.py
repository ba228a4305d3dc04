"""Rule-generated AN4/FSDD-style text for the n-gram LM: spelled words, random letter strings,
digit strings read digit by digit, numbers and dates as words, and the AN4 command words.

    python runs/lm-spelled/generate.py --lines 100000 --seed 0 --vocab runs/lm/vocab_100000.txt > spelled.txt

No test transcript is read: the only inputs are the LM vocabulary (for words to spell) and the
AN4 command words seen in data/an4_train.jsonl (erase, rubout, enter, yes, no, go, stop, help,
repeat, start), written in here.
"""

from __future__ import annotations

import argparse
import random
import sys

LETTERS = "abcdefghijklmnopqrstuvwxyz"
ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
ORD_ONES = ["zeroth", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
            "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth", "eighteenth",
            "nineteenth"]
ORD_TENS = {20: "twentieth", 30: "thirtieth"}
MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december"]
COMMANDS = ["yes", "no", "go", "stop", "help", "repeat", "start"]
STREETS = ["drive", "lane", "street", "road", "avenue", "court", "way", "place", "hill", "ville", "burg", "wood",
           "field", "dale", "view", "town", "port", "side", "house", "gate"]


def two_digits(n: int) -> list[str]:
    """0-99 as words ("seventy five")."""
    if n < 20:
        return [ONES[n]]
    return [TENS[n // 10]] + ([ONES[n % 10]] if n % 10 else [])


def zero(rng: random.Random) -> str:
    return "oh" if rng.random() < 0.5 else "zero"


def digits(n_digits: int, rng: random.Random) -> list[str]:
    """A digit string read digit by digit, 0 as oh or zero."""
    out = []
    for _ in range(n_digits):
        d = rng.randrange(10)
        out.append(zero(rng) if d == 0 else ONES[d])
    return out


def pair(n: int, rng: random.Random) -> list[str]:
    """Two digits the way a year half or a clock reads them: 5 -> oh five, 75 -> seventy five."""
    if n < 10:
        return ["oh", ONES[n]] if n else ["hundred"]
    return two_digits(n)


def number(n: int, rng: random.Random) -> list[str]:
    """0-9999 as words, in one of the readings people use."""
    if n < 100:
        return two_digits(n)
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        if rng.random() < 0.5 and rest:  # one seventy five, nine oh six
            return [ONES[hundreds]] + pair(rest, rng)
        words = [ONES[hundreds], "hundred"]
        if rest:
            words += (["and"] if rng.random() < 0.5 else []) + two_digits(rest)
        return words
    high, low = divmod(n, 100)
    if rng.random() < 0.5 and high % 10:  # fourteen eighty five, twenty nine oh seven, forty nine hundred
        return two_digits(high) + pair(low, rng)
    thousands, rest = divmod(n, 1000)
    words = two_digits(thousands) + ["thousand"]
    hundreds, rest = divmod(rest, 100)
    if hundreds:
        words += [ONES[hundreds], "hundred"]
    if rest:
        words += (["and"] if rng.random() < 0.5 else []) + two_digits(rest)
    return words


def random_number(rng: random.Random) -> list[str]:
    r = rng.random()
    if r < 0.35:
        return digits(rng.randint(1, 5), rng)
    if r < 0.65:
        return number(rng.randrange(100), rng)
    if r < 0.85:
        return number(rng.randrange(100, 1000), rng)
    return number(rng.randrange(1000, 10000), rng)


def ordinal(n: int) -> list[str]:
    if n < 20:
        return [ORD_ONES[n]]
    if n % 10 == 0:
        return [ORD_TENS[n]]
    return [TENS[n // 10], ORD_ONES[n % 10]]


def year(rng: random.Random) -> list[str]:
    y = rng.randrange(1900, 2000) if rng.random() < 0.9 else rng.randrange(2000, 2030)
    if rng.random() < 0.1:  # one nine seven zero
        return [ONES[int(c)] if c != "0" else zero(rng) for c in str(y)]
    if y < 2000:
        return ["nineteen"] + pair(y - 1900, rng)
    if rng.random() < 0.5:
        return ["two", "thousand"] + (two_digits(y - 2000) if y > 2000 else [])
    return ["twenty"] + pair(y - 2000, rng)


def date(rng: random.Random) -> list[str]:
    month, day = rng.randrange(12), rng.randint(1, 31)
    r = rng.random()
    if r < 0.5:
        return [MONTHS[month]] + ordinal(day) + year(rng)
    if r < 0.65:
        return (ordinal(day) if rng.random() < 0.5 else two_digits(day)) + [MONTHS[month]] + year(rng)
    if r < 0.8:
        return [MONTHS[month]] + two_digits(day) + year(rng)
    return two_digits(month + 1) + two_digits(day) + pair(rng.randrange(100), rng)  # eleven nine sixty eight


def spelled(words: list[str], rng: random.Random) -> list[str]:
    word = rng.choice(words)
    if rng.random() < 0.2:
        word += rng.choice(STREETS) if rng.random() < 0.5 else rng.choice(words)
    return list(word)


def letters(rng: random.Random) -> list[str]:
    return [rng.choice(LETTERS) for _ in range(rng.randint(1, 6))]


def line(words: list[str], rng: random.Random) -> list[str]:
    r = rng.random()
    if r < 0.25:
        return spelled(words, rng)
    if r < 0.5:  # an AN4 "an" prompt: [erase|rubout|enter] letters [number]
        head = rng.choice(["erase", "rubout", "enter", "", "", ""])
        body = letters(rng) if head != "enter" or rng.random() < 0.3 else []
        tail = random_number(rng) if rng.random() < 0.8 or not body else []
        return ([head] if head else []) + body + tail
    if r < 0.62:  # zip code, phone number, digit string
        return digits(rng.choice([4, 5, 5, 7, 7, 10]), rng)
    if r < 0.74:
        return random_number(rng)
    if r < 0.84:
        return date(rng)
    if r < 0.94:
        r = rng.random()
        if r < 0.5:
            return [rng.choice(COMMANDS)]
        return [rng.choice(["enter", "erase", "rubout"])] + random_number(rng)
    return [rng.choice(LETTERS)] if rng.random() < 0.5 else digits(1, rng)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocab", required=True, help="words to spell: those of 3+ letters a-z")
    parser.add_argument("--spell-top", type=int, default=50000, help="spell only the first N words of --vocab")
    args = parser.parse_args(argv)
    words = [w for w in open(args.vocab, encoding="utf-8").read().split()[: args.spell_top] if len(w) >= 3 and w.isalpha() and w.isascii()]
    rng = random.Random(args.seed)
    out = sys.stdout
    for _ in range(args.lines):
        tokens = [t for t in line(words, rng) if t]
        if tokens:
            out.write(" ".join(tokens) + "\n")


if __name__ == "__main__":
    main()
