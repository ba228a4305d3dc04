"""The n-gram LM's text preparation, lexicons and OOV rates (models.lm.corpus), and KenLM's tools when built."""

from __future__ import annotations

import gzip
import json
import math
import shutil
from collections import Counter
from pathlib import Path

import pytest

from app.asr.lexicon import Lexicon
from models.lm import corpus
from models.lm.corpus import BOOKS_FILE, has_foreign_letter, lexicon_lines, oov_rates, prepare, sorted_counts
from models.train.corpus.text import is_heldout

HELDOUT = "It rained all day."  # is_heldout("it rained all day")


def test_heldout_example_is_heldout() -> None:
    assert is_heldout("it rained all day")


def test_foreign_letters_are_those_folding_cannot_spell() -> None:
    assert not has_foreign_letter("Café, naïve, Émile Zola; 1842!")
    assert has_foreign_letter("the palace of the Cæsars")
    assert has_foreign_letter("Straße")
    assert has_foreign_letter("the word λόγος")


def test_prepare_filters_and_keeps_order() -> None:
    sources = [
        ("common_voice_sentences.txt", ["The cat sat.", "the cat sat", "", "--", HELDOUT, "A Cæsar salad."]),
        (BOOKS_FILE, ["He had 3 dogs.", "She ran.", "Last book, first line.", "Last book, last line."]),
    ]
    out = prepare(sources, heldout_books_lines=2)
    assert out.train == ["the cat sat", "he had three dogs", "she ran"]
    assert out.heldout_books == ["last book first line", "last book last line"]
    cv, books = out.stats["common_voice_sentences.txt"], out.stats[BOOKS_FILE]
    assert (cv.lines, cv.kept, cv.duplicates, cv.empty, cv.heldout, cv.foreign_letters) == (6, 1, 1, 2, 1, 1)
    assert (books.kept, books.heldout_books, books.words) == (2, 2, 6)
    assert out.counts["the"] == 1 and out.counts["three"] == 1 and "last" not in out.counts


def test_lexicon_sizes_are_prefixes_and_readable(tmp_path: Path) -> None:
    counts = sorted_counts(Counter({"b": 2, "a": 2, "the": 5, "don't": 1}))
    assert [w for w, _ in counts] == ["the", "a", "b", "don't"]
    path = tmp_path / "lexicon.txt"
    path.write_text("\n".join(lexicon_lines(w for w, _ in counts[:3])) + "\n")
    assert path.read_text().splitlines()[0] == "the\tt h e |"
    lexicon = Lexicon.from_file(path)
    assert [w for w, _ in lexicon.entries] == ["the", "a", "b"]
    packed = tmp_path / "lexicon.txt.gz"
    corpus.write_lines(packed, lexicon_lines(w for w, _ in counts[:3]))
    assert gzip.decompress(packed.read_bytes()).decode() == path.read_text()
    corpus.write_lines(tmp_path / "again.txt.gz", lexicon_lines(w for w, _ in counts[:3]))
    assert (tmp_path / "again.txt.gz").read_bytes() == packed.read_bytes()  # no time stamp in the header
    assert Lexicon.from_file(packed).entries == lexicon.entries


def test_oov_rates() -> None:
    counts = [("the", 9), ("cat", 5), ("sat", 2), ("mat", 1)]
    rates = oov_rates(counts, [1, 2, 4], ["The cat sat on the mat."])
    assert [r.oov_tokens for r in rates] == [4, 3, 1]  # "on" is never in
    assert [r.min_count for r in rates] == [9, 5, 1]
    assert rates[0].tokens == 6 and math.isclose(rates[-1].rate, 100 / 6)


def test_prepare_command_writes_files(tmp_path: Path) -> None:
    text = tmp_path / "text"
    text.mkdir()
    (text / "common_voice_sentences.txt").write_text("How big can elephants be?\nMove these files.\n")
    (text / "lj_speech.txt").write_text("Printing was known long ago.\n")
    with gzip.open(text / "vctk_transcripts.txt.gz", "wt") as f:
        f.write("Please call Stella.\n")
    (text / "gutenberg_Tiny_1.txt").write_text("*** START OF THE BOOK ***\nIt was a dark night. The end came.\n*** END OF THE BOOK ***\n")
    with gzip.open(text / BOOKS_FILE, "wt") as f:
        f.write("One book line.\nThe held-out book.\n")
    out = tmp_path / "out"
    corpus.main(["prepare", "--text", str(text), "--out", str(out), "--heldout-books-lines", "1"])
    lines = (out / "lm_train.txt").read_text().splitlines()
    assert lines == ["how big can elephants be", "move these files", "printing was known long ago", "please call stella",
                     "it was a dark night", "the end came", "one book line"]
    assert (out / "books_heldout.txt").read_text() == "the held out book\n"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["total"]["kept"] == 7 and stats["vocabulary"] == len((out / "word_counts.tsv").read_text().splitlines())


KENLM_BIN = Path(__file__).resolve().parents[2] / ".tools" / "kenlm" / "bin"


@pytest.mark.skipif(not (KENLM_BIN / "lmplz").is_file() or shutil.which("/usr/bin/time") is None,
                    reason="KenLM's tools are not built (scripts/build-kenlm.sh) or GNU time is missing")
def test_kenlm_tools_build_a_binary_the_server_reads(tmp_path: Path) -> None:
    from app.asr.kenlm_binary import KenLMBinary, is_kenlm_binary
    from models.lm import kenlm

    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat\nthe dog sat on the log\na cat and a dog\n" * 5)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("the\ncat\nsat\non\nmat\ndog\n")
    kenlm.main(["--corpus", str(text), "--out", str(tmp_path / "lm"), "--order", "3", "--prune", "0", "0", "1",
                "--vocab", str(vocab), "--discount-fallback", "--memory", "64M", "--temp", str(tmp_path)])
    report = json.loads((tmp_path / "lm" / "build.json").read_text())
    assert report["lmplz"]["peak_rss_mb"] > 0 and report["ngrams"]["1"] == 6 + 3  # the words, <unk>, <s>, </s>
    binary = tmp_path / "lm" / "lm.klm"
    assert is_kenlm_binary(binary) and not (tmp_path / "lm" / "lm.arpa").exists()
    lm = KenLMBinary(binary, ["the", "cat", "sat", "on", "mat", "dog", "log"])
    assert lm.score_sentence("the cat sat on the mat".split()) > lm.score_sentence("mat the on sat cat the".split())
    assert lm.word_id("log") != lm.unk_id and lm.unigram_logprob(lm.word_id("log")) == lm.unigram_logprob(lm.unk_id)  # limited out
