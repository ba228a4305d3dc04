"""The n-gram LM's text, word counts and lexicons, from every file of the shared text folder.

    python -m models.lm.corpus prepare --text ../shared/data/text --out runs/lm
    python -m models.lm.corpus lexicon --counts runs/lm/word_counts.tsv --size 100000 --out runs/lm/lexicon.txt.gz
    python -m models.lm.corpus oov --counts runs/lm/word_counts.tsv --sizes 25000 50000 100000 \
        --manifest ../shared/data/real_dev_lj/manifest.jsonl

`prepare` reads, in this order: `common_voice_sentences.txt`, `lj_speech.txt` (one sentence a
line), `vctk_transcripts.txt.gz` (one a line), the three raw Gutenberg novels `gutenberg_*.txt`
(header/footer stripped and split into sentences as the corpus builder does) and
`gutenberg_more.txt.gz` (one a line, in reading order). Each sentence goes through
`app.asr.text.normalize_text`, the one normalisation of the project (lowercase a-z, apostrophe,
space; digits spelled out). A sentence is dropped when

- it normalises to nothing;
- it holds a letter outside the Latin alphabet even after accents are folded (Greek, Cyrillic,
  `æ`, `ß`...): normalisation would silently cut such words into fragments ("cæsar" -> "c sar");
- it is held out (`models.train.corpus.text.is_heldout`, a hash of the normalised text): the
  dev and test transcripts of the synthetic corpus are drawn from those, so the LM never
  holds one;
- it repeats an earlier normalised sentence.

The last `HELDOUT_BOOKS_LINES` lines of `gutenberg_more.txt.gz` (Émile Zola's four books, the
last author folder in the file's order) go to `books_heldout.txt` instead: held-out books in
reading order for bits-per-character and perplexity figures, never trained on by either LM.

Outputs in `--out`: `lm_train.txt` (one normalised sentence a line, source order kept, so
reading order survives for the Transformer-XL), `books_heldout.txt`, `word_counts.tsv`
(`word<TAB>count`, most frequent first, ties by word) and `stats.json` (what was read and
dropped, per source).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from app.asr.text import normalize_text
from models.train.corpus.text import gutenberg_body, is_heldout, split_sentences
from models.train.manifest import read_manifest

LINE_FILES = ("common_voice_sentences.txt", "lj_speech.txt", "vctk_transcripts.txt.gz")
NOVELS_GLOB = "gutenberg_*.txt"
BOOKS_FILE = "gutenberg_more.txt.gz"
# Zola's 4 books (SOURCES.md: 24,131 sentences) close gutenberg_more.txt.gz, whose authors come
# in alphabetical order; line 1,327,149 ("THE FAT AND THE THIN," ...) opens the block.
HELDOUT_BOOKS_LINES = 24_131

_FOREIGN_LETTER = re.compile(r"[^\W\d_a-zA-Z]")  # a letter (\w minus digits/underscore) that is not a-z


def read_text_lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig", errors="replace") as f:
        return f.read().splitlines()


def has_foreign_letter(raw: str) -> bool:
    """Whether a letter outside a-z survives folding of accents (NFKD, combining marks dropped)."""
    folded = "".join(c for c in unicodedata.normalize("NFKD", raw) if not unicodedata.combining(c))
    return _FOREIGN_LETTER.search(folded) is not None


def iter_sources(text_dir: Path) -> Iterator[tuple[str, list[str]]]:
    """(source name, raw sentences) for every file, in a fixed order."""
    for name in LINE_FILES:
        yield name, read_text_lines(text_dir / name)
    for path in sorted(text_dir.glob(NOVELS_GLOB)):
        yield path.name, split_sentences(gutenberg_body(path.read_text(encoding="utf-8-sig", errors="replace")))
    yield BOOKS_FILE, read_text_lines(text_dir / BOOKS_FILE)


@dataclass
class SourceStats:
    lines: int = 0
    kept: int = 0
    words: int = 0
    empty: int = 0
    foreign_letters: int = 0
    heldout: int = 0
    duplicates: int = 0
    heldout_books: int = 0


@dataclass
class PreparedText:
    train: list[str]
    heldout_books: list[str]
    counts: Counter[str]
    stats: dict[str, SourceStats] = field(default_factory=dict)


def prepare(sources: Iterable[tuple[str, Sequence[str]]], *, heldout_books_lines: int = HELDOUT_BOOKS_LINES) -> PreparedText:
    """Normalise and filter; the last `heldout_books_lines` of `BOOKS_FILE` become held-out books."""
    seen: set[str] = set()
    out = PreparedText([], [], Counter())
    for name, raw_lines in sources:
        stats = out.stats.setdefault(name, SourceStats())
        split = len(raw_lines) - heldout_books_lines if name == BOOKS_FILE else len(raw_lines)
        for index, raw in enumerate(raw_lines):
            stats.lines += 1
            text = normalize_text(raw)
            if not text:
                stats.empty += 1
            elif has_foreign_letter(raw):
                stats.foreign_letters += 1
            elif index >= split:
                stats.heldout_books += 1
                out.heldout_books.append(text)
            elif is_heldout(text):
                stats.heldout += 1
            elif text in seen:
                stats.duplicates += 1
            else:
                seen.add(text)
                words = text.split()
                stats.kept += 1
                stats.words += len(words)
                out.counts.update(words)
                out.train.append(text)
    return out


def sorted_counts(counts: Counter[str]) -> list[tuple[str, int]]:
    """Most frequent first, ties by word, so every size of lexicon is a prefix of the next."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def read_counts(path: Path) -> list[tuple[str, int]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        word, count = line.split("\t")
        rows.append((word, int(count)))
    return rows


def lexicon_lines(words: Iterable[str], *, word_separator: str = "|") -> list[str]:
    """`word<TAB>l e t t e r s |`, the format `app.asr.lexicon.Lexicon.from_file` reads."""
    return [f"{word}\t{' '.join(word)} {word_separator}" for word in words]


@dataclass(frozen=True)
class OovRate:
    size: int
    min_count: int  # the count of the rarest word kept
    tokens: int
    oov_tokens: int
    oov_types: int

    @property
    def rate(self) -> float:
        return 100.0 * self.oov_tokens / max(self.tokens, 1)


def oov_rates(counts: Sequence[tuple[str, int]], sizes: Sequence[int], references: Sequence[str]) -> list[OovRate]:
    """Out-of-vocabulary rate (% of reference word tokens) for lexicons of the top `sizes` words."""
    rank = {word: i for i, (word, _) in enumerate(counts)}
    tokens = [w for text in references for w in normalize_text(text).split()]
    results = []
    for size in sizes:
        oov = [w for w in tokens if rank.get(w, size) >= size]
        min_count = counts[min(size, len(counts)) - 1][1] if counts else 0
        results.append(OovRate(size, min_count, len(tokens), len(oov), len(set(oov))))
    return results


def read_manifest_texts(path: Path) -> list[str]:
    return [row["text"] for row in read_manifest(path)]


def write_lines(path: Path, lines: Iterable[str]) -> None:
    """One line each; gzip-compressed when the name ends in `.gz` (reproducibly: no name or time in the header)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as packed:
            packed.write("".join(line + "\n" for line in lines).encode("utf-8"))
        return
    with open(path, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m models.lm.corpus", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="normalised LM text, held-out books, word counts")
    p.add_argument("--text", type=Path, required=True, help="the shared text folder")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--heldout-books-lines", type=int, default=HELDOUT_BOOKS_LINES)
    p = sub.add_parser("lexicon", help="a lexicon of the most frequent words")
    p.add_argument("--counts", type=Path, required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--vocab-out", type=Path, help="also the bare words, one a line (lmplz --limit_vocab_file)")
    p = sub.add_parser("oov", help="OOV rate of manifests' references per lexicon size")
    p.add_argument("--counts", type=Path, required=True)
    p.add_argument("--sizes", type=int, nargs="+", required=True)
    p.add_argument("--manifest", type=Path, nargs="+", required=True)
    args = parser.parse_args(argv)

    if args.command == "prepare":
        args.out.mkdir(parents=True, exist_ok=True)
        prepared = prepare(iter_sources(args.text), heldout_books_lines=args.heldout_books_lines)
        write_lines(args.out / "lm_train.txt", prepared.train)
        write_lines(args.out / "books_heldout.txt", prepared.heldout_books)
        write_lines(args.out / "word_counts.tsv", (f"{w}\t{c}" for w, c in sorted_counts(prepared.counts)))
        stats = {name: asdict(s) for name, s in prepared.stats.items()}
        total = {key: sum(s[key] for s in stats.values()) for key in asdict(SourceStats())}
        summary = {"sources": stats, "total": total, "vocabulary": len(prepared.counts)}
        (args.out / "stats.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        print(json.dumps({"total": total, "vocabulary": len(prepared.counts)}))
    elif args.command == "lexicon":
        words = [w for w, _ in read_counts(args.counts)[: args.size]]
        write_lines(args.out, lexicon_lines(words))
        if args.vocab_out:
            write_lines(args.vocab_out, words)
        print(f"{len(words)} words -> {args.out}")
    else:
        counts = read_counts(args.counts)
        for manifest in args.manifest:
            references = read_manifest_texts(manifest)
            for r in oov_rates(counts, args.sizes, references):
                print(json.dumps({"manifest": str(manifest), "size": r.size, "min_count": r.min_count, "tokens": r.tokens,
                                  "oov_tokens": r.oov_tokens, "oov_types": r.oov_types, "oov_rate": round(r.rate, 2)}))


if __name__ == "__main__":
    main()
