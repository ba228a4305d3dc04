"""Training text: normalised sentence pools and the held-out split.

Held-out sentences are chosen by a hash of the normalised text, so the split is the same for
every seed, every text source and the LM files: a sentence held out once is held out everywhere.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from app.asr.text import normalize_text

MIN_WORDS, MAX_WORDS = 3, 25
HELDOUT_PER_MILLE = 50  # ~5% of sentences

SYNTH_TEXT_FILES = ("common_voice_sentences.txt", "lj_speech.txt")
GUTENBERG_GLOB = "gutenberg_*.txt"


def text_hash(text: str) -> int:
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:12], 16)


def is_heldout(text: str) -> bool:
    """Hash-based, so the split needs no state and agrees across sources and runs."""
    return text_hash(text) % 1000 < HELDOUT_PER_MILLE


def dedup(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


_BOILERPLATE = re.compile(r"project gutenberg|^\s*produced by\b", flags=re.IGNORECASE)


def gutenberg_body(raw: str) -> str:
    """Text between the ``*** START OF`` and ``*** END OF`` markers (the licence
    boilerplate would otherwise pollute the LM)."""
    start = re.search(r"^\*\*\* ?START OF.*$", raw, flags=re.MULTILINE)
    end = re.search(r"^\*\*\* ?END OF.*$", raw, flags=re.MULTILINE)
    body = raw[start.end() if start else 0 : end.start() if end else len(raw)]
    # Credits and "End of the Project Gutenberg EBook" lines sit inside the markers.
    return "\n".join(line for line in body.splitlines() if not _BOILERPLATE.search(line))


_ABBREVIATIONS = re.compile(r"\b(Mr|Mrs|Ms|Dr|St|Jr|Sr|Mt|No|vs)\.", flags=re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)\]]*\s+")


def split_sentences(body: str) -> list[str]:
    """Paragraphs are joined and split after ``.!?``; common abbreviations are protected."""
    sentences: list[str] = []
    for paragraph in re.split(r"\n\s*\n", body):
        flat = " ".join(paragraph.split())
        if not flat:
            continue
        flat = _ABBREVIATIONS.sub(r"\1", flat)
        sentences.extend(s for s in _SENTENCE_END.split(flat) if s.strip())
    return sentences


@dataclass(frozen=True)
class TextPools:
    train: list[str]  # 3-25 words, for synthesis
    heldout: list[str]  # 3-25 words, never synthesised for training
    lm_train: list[str]
    lm_heldout: list[str]


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8-sig", errors="replace").splitlines()


def build_text_pools(text_dir: Path) -> TextPools:
    """Normalise, filter and split all text. The LM keeps sentences of any length from every
    file (Gutenberg included) but drops every hash-held-out sentence, so lm_train can never
    contain a dev/test transcript."""
    synth: list[str] = []
    for name in SYNTH_TEXT_FILES:
        synth.extend(normalize_text(line) for line in read_lines(text_dir / name))
    synth = dedup(s for s in synth if MIN_WORDS <= len(s.split()) <= MAX_WORDS)
    train = [s for s in synth if not is_heldout(s)]
    heldout = [s for s in synth if is_heldout(s)]

    lm_all: list[str] = []
    for name in SYNTH_TEXT_FILES:
        lm_all.extend(normalize_text(line) for line in read_lines(text_dir / name))
    for path in sorted(text_dir.glob(GUTENBERG_GLOB)):
        body = gutenberg_body(path.read_text(encoding="utf-8-sig", errors="replace"))
        lm_all.extend(normalize_text(s) for s in split_sentences(body))
    lm_train = dedup(s for s in lm_all if s and not is_heldout(s))
    return TextPools(train=train, heldout=heldout, lm_train=lm_train, lm_heldout=heldout)


def write_lines(path: Path, lines: Iterable[str]) -> int:
    items = list(lines)
    path.write_text("".join(line + "\n" for line in items), encoding="utf-8")
    return len(items)
