"""Training recipe for the punctuation and casing tagger (`models.punctuation`).

    python -m models.train.punctuation prepare --data /work/shared/data --out data/punct
    python -m models.train.punctuation train --prepared data/punct --out runs/punct --minutes 35 --threads 2  # conv, 192 wide, 4 layers

Data (`../shared/data/text/`, `SOURCES.md` there): `gutenberg_more.txt.gz` (one sentence per
line, books in reading order, author folders in alphabetical order), the Common Voice
prompts, the LJ Speech transcripts (clips in reading order), the VCTK prompts and the three
older Gutenberg novels (paragraphs). Every passage is labelled with
`app.asr.punctuation_text.label_text`: the words are exactly what `normalize_text` makes of
it, the targets are each word's case and the mark after it.

Held out (never trained on): the last 5 books of `gutenberg_more.txt.gz`, i.e. every line
from `HELDOUT_FIRST_LINE` on. The file has no book markers; books were located from the
per-author sentence counts in `SOURCES.md` (author folders follow each other in
alphabetical order, so Zola, the last, starts at line 1,327,149 = 1,351,279 - 24,131 + 1,
with the translator's preface of "The Fat and the Thin") and, inside Wilde, the folder
before, by the change of text: his last volume (selected poems, with its publication
notes) starts at line 1,327,119. So the test books are Wilde's poems and Zola's four
books: 24,161 sentences. A development set for monitoring is carved from the training
books: every line of each 100th block of 500 lines.

Inputs look like recognizer output: windows of 8 to `max_words` words cut anywhere (half of
them at a sentence start), lowercase and unpunctuated, with word errors injected at a rate
drawn per window from 0 to `max_error_rate` (substitutions by a random corpus word,
deletions, whose mark moves to the word before, and insertions of unmarked words).

AdamW, linear warm-up, cosine decay over `--minutes` of wall clock (or `--steps`, whichever
ends first), on `--device` (auto: CUDA when there is one, with bf16 autocast and `--workers`
processes making batches; `pack`/`unpack` and `scripts/gpu/punctuation.sh` for a lent GPU);
`OUT/last.pt` (config, weights, vocabulary, known forms) every few minutes and at the end;
development F1 in `OUT/log.jsonl`. `calibrate` then tunes one offset per mark on
the development set (the argmax of a tagger trained with plain cross-entropy under-predicts
rare marks) and folds it into the mark head's bias, so the exported graph needs nothing else.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import time
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from app.asr.punctuation_text import (
    ABBREVIATIONS,
    CAPITAL,
    CASES,
    KNOWN,
    LOWER,
    MARKS,
    NO_MARK,
    label_text,
    suffix_bucket,
)
from models.train.common import learning_rate, resolve_device
from models.train.punctuation_data import SENTENCE_END, Labelled, load_source
from models.train.punctuation_pack import ARCHIVE, pack, pack_heldout, unpack
from models.train.punctuation_scores import calibrate, evaluate

HELDOUT_FIRST_LINE = 1_327_119  # 1-based line of gutenberg_more.txt.gz where the last 5 books begin
DEV_BLOCK, DEV_EVERY = 500, 100  # development set: lines of every 100th block of 500 (training books only)
NOVELS = ("gutenberg_Alice-s-Adventures-in-Wonderland_11.txt", "gutenberg_Pride-and-Prejudice_1342.txt",
          "gutenberg_The-Adventures-of-Sherlock-Holmes_1661.txt")
SOURCE_WEIGHTS = {"gutenberg": 0.72, "common_voice": 0.12, "lj_speech": 0.1, "vctk": 0.03, "novels": 0.03}


# --- reading the text ------------------------------------------------------------------------
def gutenberg_lines(text_dir: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, sentence) of gutenberg_more.txt.gz."""
    with gzip.open(text_dir / "gutenberg_more.txt.gz", "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            yield number, line.rstrip("\n")


def is_dev_line(number: int) -> bool:
    return (number - 1) // DEV_BLOCK % DEV_EVERY == DEV_EVERY - 1


def heldout_sentences(text_dir: Path) -> list[str]:
    """The test books: every line from `HELDOUT_FIRST_LINE` on."""
    return [line for number, line in gutenberg_lines(text_dir) if number >= HELDOUT_FIRST_LINE]


def novel_paragraphs(path: Path) -> Iterator[str]:
    """Paragraphs between the Project Gutenberg start and end markers, lines joined."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("*** START OF")) + 1
    end = next(i for i, line in enumerate(lines) if line.startswith("*** END OF"))
    paragraph: list[str] = []
    for line in [*lines[start:end], ""]:
        if line.strip():
            paragraph.append(line.strip())
        elif paragraph:
            text = " ".join(paragraph)
            paragraph = []
            if re.search(r"[a-z]", text) and re.search(r"[.?!,]", text):  # skip headings and chapter titles
                yield text


def passages(text_dir: Path) -> Iterator[tuple[str, str]]:
    """(source, passage) for all training and development text; source 'dev' marks the development lines."""
    for number, line in gutenberg_lines(text_dir):
        if number >= HELDOUT_FIRST_LINE:
            break
        yield ("dev" if is_dev_line(number) else "gutenberg"), line
    for source, name in (("common_voice", "common_voice_sentences.txt"), ("lj_speech", "lj_speech.txt"), ("vctk", "vctk_transcripts.txt.gz")):
        path = text_dir / name
        if path.is_file():
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8") as f:
                for line in f:
                    yield source, line.rstrip("\n")
    for name in NOVELS:
        if (text_dir / name).is_file():
            for paragraph in novel_paragraphs(text_dir / name):
                yield "novels", paragraph


# --- prepare: label everything once, store arrays ---------------------------------------------
def prepare(data_dir: Path, out: Path, *, vocab_size: int, suffix_buckets: int, known_min_count: int = 3, limit: int = 0) -> None:
    """Label every passage; choose the vocabulary and the known mixed-case forms; write `out/*.npy`."""
    out.mkdir(parents=True, exist_ok=True)
    text_dir = data_dir / "text"
    provisional: dict[str, int] = {}
    forms: dict[str, int] = {}
    form_list: list[str] = []
    columns: dict[str, tuple[array, array, array, array]] = {}
    started = time.time()
    for count, (source, passage) in enumerate(passages(text_dir)):
        if limit and count >= limit:
            break
        ids, cases, marks, form_ids = columns.setdefault(source, (array("i"), array("b"), array("b"), array("i")))
        for w in label_text(passage):
            ids.append(provisional.setdefault(w.word, len(provisional)))
            cases.append(w.case)
            marks.append(w.mark)
            if w.case == KNOWN:
                if w.form not in forms:
                    forms[w.form] = len(form_list)
                    form_list.append(w.form)
                form_ids.append(forms[w.form])
            else:
                form_ids.append(-1)
        if count % 200_000 == 0:
            print(f"prepare: {count} passages, {len(provisional)} distinct words, {time.time() - started:.0f} s", flush=True)
    words_by_id = sorted(provisional, key=provisional.__getitem__)
    counts = np.zeros(len(words_by_id), np.int64)
    for source, (ids, *_rest) in columns.items():
        if source != "dev":
            counts += np.bincount(np.frombuffer(ids, np.int32), minlength=len(words_by_id))
    order = np.argsort(-counts, kind="stable")[:vocab_size]
    vocabulary = [words_by_id[i] for i in order if counts[i] > 0]
    remap = np.ones(len(words_by_id), np.int32)  # unknown
    remap[order[: len(vocabulary)]] = np.arange(2, len(vocabulary) + 2, dtype=np.int32)
    suffix_of = np.array([suffix_bucket(w, suffix_buckets) for w in words_by_id], np.int16)
    known = known_forms(columns, form_list, words_by_id, min_count=known_min_count)
    known_form_ids = np.array(sorted(forms[f] for f in known.values() if f in forms), np.int32)
    for source, (ids, cases, marks, form_ids) in columns.items():
        raw = np.frombuffer(ids, np.int32)
        case = np.frombuffer(cases, np.int8).copy()
        kept = np.isin(np.frombuffer(form_ids, np.int32), known_form_ids)
        case[(case == KNOWN) & ~kept] = CAPITAL  # a mixed-case form outside the table is shown capitalised
        np.save(out / f"{source}.words.npy", remap[raw])
        np.save(out / f"{source}.suffixes.npy", suffix_of[raw])
        np.save(out / f"{source}.cases.npy", case)
        np.save(out / f"{source}.marks.npy", np.frombuffer(marks, np.int8))
    (out / "vocab.txt").write_text("".join(w + "\n" for w in vocabulary), encoding="utf-8")
    (out / "known.json").write_text(json.dumps(known, indent=0, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    summary = {source: len(cols[0]) for source, cols in columns.items()}
    coverage = float(counts[order[: len(vocabulary)]].sum() / max(counts.sum(), 1))
    info = {"words": summary, "vocabulary": len(vocabulary), "coverage": coverage, "known_forms": len(known), "suffix_buckets": suffix_buckets,
            "heldout_first_line": HELDOUT_FIRST_LINE, "seconds": round(time.time() - started)}
    (out / "info.json").write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps(info))


def known_forms(columns: dict[str, tuple[array, array, array, array]], form_list: list[str], words_by_id: list[str], *, min_count: int) -> dict[str, str]:
    """word -> its mixed-case form ("mcdonald" -> "McDonald") when that form is its usual capitalised
    spelling (at least `min_count` times and at least half of the word's capitalised uses); abbreviations always."""
    form_counts: Counter[int] = Counter()
    capitalised: Counter[int] = Counter()
    for source, (ids, cases, _marks, form_ids) in columns.items():
        if source == "dev":
            continue
        raw, case, form = np.frombuffer(ids, np.int32), np.frombuffer(cases, np.int8), np.frombuffer(form_ids, np.int32)
        form_counts.update(form[form >= 0].tolist())
        capitalised.update(raw[case != LOWER].tolist())
    index = {w: i for i, w in enumerate(words_by_id)}
    table: dict[str, str] = {}
    for form_id, n in form_counts.items():
        form = form_list[form_id]
        word = form.lower().rstrip(".")
        if n >= min_count and 2 * n >= capitalised[index.get(word, -1)] and (word not in table or n > form_counts[form_list.index(table[word])]):
            table[word] = form
    for abbreviation in ABBREVIATIONS:
        table[abbreviation[:-1].lower()] = abbreviation
    return table


# --- batches with injected recognition errors --------------------------------------------------
@dataclass(frozen=True)
class BatchConfig:
    tokens: int = 6144  # words per batch
    min_words: int = 8
    max_words: int = 128
    start_at_sentence: float = 0.5
    max_error_rate: float = 0.15  # per window a rate is drawn from [0, this]


class Batcher:
    """Windows of one length per batch, drawn from the sources by weight, with recognition errors."""

    def __init__(self, sources: dict[str, Labelled], weights: dict[str, float], config: BatchConfig, *, seed: int) -> None:
        self.sources = {k: v for k, v in sources.items() if len(v.words) > config.max_words * 2}
        total = sum(weights[k] for k in self.sources)
        self.names = list(self.sources)
        self.probabilities = np.array([weights[k] / total for k in self.names])
        self.starts = {k: v.starts() for k, v in self.sources.items()}
        self.config = config
        self.rng = np.random.default_rng(seed)

    def batch(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """words, suffixes, cases, marks: each `[B, T]`."""
        c, rng = self.config, self.rng
        length = int(rng.integers(c.min_words, c.max_words + 1))
        rows = max(c.tokens // length, 1)
        out = np.zeros((4, rows, length), np.int64)
        for r in range(rows):
            name = self.names[rng.choice(len(self.names), p=self.probabilities)]
            source, starts = self.sources[name], self.starts[name]
            if rng.random() < c.start_at_sentence:
                start = int(starts[rng.integers(len(starts))])
            else:
                start = int(rng.integers(len(source.words)))
            start = min(start, len(source.words) - 2 * length)
            window = slice(start, start + 2 * length)  # room for deletions
            columns = [source.words[window], source.suffixes[window], source.cases[window], source.marks[window]]
            out[:, r] = corrupt(columns, source, length=length, rate=float(rng.random() * c.max_error_rate), rng=rng)
        return out[0], out[1], out[2], out[3]


def corrupt(columns: list[np.ndarray], source: Labelled, *, length: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """`length` words from `columns` with substitutions, deletions and insertions at `rate` in all -> `[4, length]`."""
    words, suffixes, cases, marks = (c.tolist() for c in columns)
    out: list[list[int]] = [[], [], [], []]
    i = 0
    while len(out[0]) < length and i < len(words):
        u = rng.random()
        if u < rate * 0.5:  # substitution: a random word of the corpus takes this one's labels
            j = int(rng.integers(len(source.words)))
            case = cases[i] if cases[i] in (LOWER, CAPITAL) else CAPITAL
            row = [int(source.words[j]), int(source.suffixes[j]), case, marks[i]]
        elif u < rate * 0.75:  # deletion: the mark survives on the word before, a sentence start on the word after
            if out[0] and marks[i] > out[3][-1]:
                out[3][-1] = marks[i]
            if cases[i] == CAPITAL and i + 1 < len(words) and cases[i + 1] == LOWER and (not out[0] or out[3][-1] in SENTENCE_END):
                cases[i + 1] = CAPITAL
            i += 1
            continue
        elif u < rate:  # insertion of an unmarked lowercase word before this one
            j = int(rng.integers(len(source.words)))
            out[0].append(int(source.words[j]))
            out[1].append(int(source.suffixes[j]))
            out[2].append(LOWER)
            out[3].append(NO_MARK)
            continue
        else:
            row = [words[i], suffixes[i], cases[i], marks[i]]
        for k in range(4):
            out[k].append(row[k])
        i += 1
    array_ = np.array([column[:length] for column in out], np.int64)
    if array_.shape[1] < length:  # ran out of words (very high deletion rate): repeat the last
        array_ = np.pad(array_, ((0, 0), (0, length - array_.shape[1])), mode="edge")
    return array_


# --- training ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainConfig:
    minutes: float = 35.0  # wall clock
    cpu_minutes: float = 0.0  # > 0: also a budget of process CPU time (all threads), so a shared machine slows the schedule, not the learning
    steps: int = 1_000_000
    lr: float = 1e-3
    final_lr_ratio: float = 0.05
    warmup: int = 200
    weight_decay: float = 0.01
    clip: float = 1.0
    log_every: int = 25
    eval_minutes: float = 5.0
    eval_words: int = 30_000
    seed: int = 0


def train(prepared: Path, out: Path, *, model_config: dict[str, Any], batch: BatchConfig, config: TrainConfig, threads: int,
          device: str = "cpu", workers: int = 0) -> Path:
    """Train a tagger on `device` (`auto`: CUDA when there is one; bf16 autocast there) with batches from
    `workers` processes (0: made in this process, as on the CPU); `OUT/last.pt` holds CPU tensors either way."""
    import torch
    import torch.nn.functional as F

    from models.punctuation import PunctuationTagger, TaggerConfig
    from models.train.punctuation_device import autocast, batches

    target = resolve_device(device)
    torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    out.mkdir(parents=True, exist_ok=True)
    info = json.loads((prepared / "info.json").read_text())
    vocabulary = (prepared / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    known = json.loads((prepared / "known.json").read_text(encoding="utf-8"))
    sources = {name: load_source(prepared, name) for name in SOURCE_WEIGHTS if (prepared / f"{name}.words.npy").is_file()}
    dev = load_source(prepared, "dev") if (prepared / "dev.words.npy").is_file() else next(iter(sources.values()))
    tagger_config = TaggerConfig(vocab_size=len(vocabulary) + 2, suffix_buckets=info["suffix_buckets"], max_words=max(batch.max_words, 128) * 2, **model_config)
    model = PunctuationTagger(tagger_config).to(target)
    print(f"tagger: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters on {target}, {tagger_config}", flush=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    stream = batches(partial(Batcher, sources, SOURCE_WEIGHTS, batch), seed=config.seed, workers=workers, device=target)
    log = (out / "log.jsonl").open("a")
    started = last_eval = time.time()
    cpu_started = time.process_time()
    step, seen = 0, 0
    running = torch.zeros((), dtype=torch.float64, device=target)  # the loss's moving average, read only when logged (no sync per step)

    def save(scores: Any = None) -> Path:
        path = out / "last.pt"
        weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        torch.save({"config": tagger_config.to_json(), "model": weights, "vocab": vocabulary, "known": known, "step": step,
                    "words_seen": seen, "train": asdict(config), "batch": asdict(batch), "heldout_first_line": HELDOUT_FIRST_LINE,
                    "dev": asdict(scores) if scores is not None else None}, path)
        return path

    model.train()
    while True:
        elapsed = (time.time() - started) / 60
        cpu = (time.process_time() - cpu_started) / 60
        progress = max(step / config.steps, elapsed / config.minutes if config.minutes > 0 else 0.0, cpu / config.cpu_minutes if config.cpu_minutes > 0 else 0.0)
        if progress >= 1.0:
            break
        lr = learning_rate(step=step, progress=progress, lr=config.lr, warmup=config.warmup, final_lr_ratio=config.final_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = lr
        words, suffixes, cases, marks = next(stream)
        with autocast(target):
            case_logits, mark_logits = model(words, suffixes)
            loss = F.cross_entropy(case_logits.reshape(-1, len(CASES)), cases.reshape(-1)) + F.cross_entropy(mark_logits.reshape(-1, len(MARKS)), marks.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
        optimizer.step()
        step += 1
        seen += words.numel()
        running = 0.98 * running + 0.02 * loss.detach().double() if step > 1 else loss.detach().double()  # the same doubles as Python floats
        if step % config.log_every == 0:
            rate = seen / (time.time() - started)
            average = running.item()
            print(f"step {step} loss {average:.4f} lr {lr:.2e} words {seen} ({rate:.0f}/s) {elapsed:.1f} min, {cpu:.1f} CPU min", flush=True)
            log.write(json.dumps({"step": step, "loss": round(average, 4), "lr": lr, "words": seen, "minutes": round(elapsed, 2), "cpu_minutes": round(cpu, 2)}) + "\n")
            log.flush()
        if time.time() - last_eval > config.eval_minutes * 60:
            scores = evaluate(model, dev, max_words=config.eval_words)
            print(f"dev step {step}: {scores.line()}", flush=True)
            log.write(json.dumps({"step": step, "dev": asdict(scores), "minutes": round(elapsed, 2)}) + "\n")
            save(scores)
            last_eval = time.time()
    scores = evaluate(model, dev, max_words=config.eval_words)
    print(f"dev final step {step}: {scores.line()}", flush=True)
    log.write(json.dumps({"step": step, "dev": asdict(scores), "minutes": round((time.time() - started) / 60, 2), "final": True}) + "\n")
    log.close()
    return save(scores)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="asr-train punctuation", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="label the text corpus once into arrays")
    prep.add_argument("--data", type=Path, default=Path("../shared/data"))
    prep.add_argument("--out", type=Path, required=True)
    prep.add_argument("--vocab-size", type=int, default=16000)
    prep.add_argument("--suffix-buckets", type=int, default=2048)
    prep.add_argument("--limit", type=int, default=0, help="label only this many passages (trials)")
    pk = sub.add_parser("pack", help="store prepared arrays compactly (and the held-out text) for a GPU machine")
    pk.add_argument("--prepared", type=Path, required=True)
    pk.add_argument("--out", type=Path, required=True, help=f"folder: OUT/{ARCHIVE}, OUT/text/, OUT/real_dev_lj/")
    pk.add_argument("--data", type=Path, default=Path("../shared/data"), help="where the held-out books are read from")
    pk.add_argument("--no-heldout", action="store_true", help="pack the arrays only")
    unp = sub.add_parser("unpack", help="restore the arrays of `pack` (byte-identical .npy files)")
    unp.add_argument("--archive", type=Path, required=True)
    unp.add_argument("--out", type=Path, required=True)
    cal = sub.add_parser("calibrate", help="tune the mark offsets on the development set and fold them into the checkpoint")
    cal.add_argument("--checkpoint", type=Path, required=True)
    cal.add_argument("--prepared", type=Path, required=True)
    tr = sub.add_parser("train", help="train the tagger")
    tr.add_argument("--prepared", type=Path, required=True)
    tr.add_argument("--out", type=Path, required=True)
    tr.add_argument("--encoder", choices=["transformer", "conv"], default="conv")
    tr.add_argument("--d-model", type=int, default=192)
    tr.add_argument("--d-embed", type=int, default=128)
    tr.add_argument("--layers", type=int, default=4)
    tr.add_argument("--d-inner", type=int, default=768)
    tr.add_argument("--minutes", type=float, default=35.0, help="wall-clock budget")
    tr.add_argument("--cpu-minutes", type=float, default=0.0, help="also a budget of CPU minutes (all threads); the schedule follows whichever ends first")
    tr.add_argument("--steps", type=int, default=1_000_000)
    tr.add_argument("--lr", type=float, default=2e-3)
    tr.add_argument("--batch-words", type=int, default=4096)
    tr.add_argument("--max-words", type=int, default=128)
    tr.add_argument("--eval-minutes", type=float, default=7.0)
    tr.add_argument("--threads", type=int, default=2)
    tr.add_argument("--heads", type=int, default=4, help="attention heads (transformer encoder)")
    tr.add_argument("--warmup", type=int, default=200, help="steps of linear warm-up")
    tr.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: CUDA when PyTorch sees a GPU (bf16 autocast there)")
    tr.add_argument("--workers", type=int, default=0, help="processes making batches (0: in this process, the CPU recipe; a GPU needs many)")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare(args.data, args.out, vocab_size=args.vocab_size, suffix_buckets=args.suffix_buckets, limit=args.limit)
        return 0
    if args.command == "pack":
        summary = pack(args.prepared, args.out / ARCHIVE)
        print(f"packed {summary.words} words of {args.prepared} ({summary.raw_bytes / 2**20:.1f} MiB of .npy) into {summary.archive} ({summary.bytes / 2**20:.1f} MiB)")
        if not args.no_heldout:
            kept = pack_heldout(args.data, args.out, first_line=HELDOUT_FIRST_LINE)
            print(f"held-out text: {kept} lines from line {HELDOUT_FIRST_LINE} in {args.out / 'text'}")
        return 0
    if args.command == "unpack":
        written = unpack(args.archive, args.out)
        print(f"unpacked {len(written)} files into {args.out}")
        return 0
    if args.command == "calibrate":
        print(json.dumps(calibrate(args.checkpoint, args.prepared)))
        return 0
    model_config = {"encoder": args.encoder, "d_model": args.d_model, "d_embed": args.d_embed, "n_layer": args.layers, "d_inner": args.d_inner, "n_head": args.heads}
    path = train(args.prepared, args.out, model_config=model_config, batch=BatchConfig(tokens=args.batch_words, max_words=args.max_words),
                 config=TrainConfig(minutes=args.minutes, cpu_minutes=args.cpu_minutes, steps=args.steps, lr=args.lr, warmup=args.warmup,
                                    eval_minutes=args.eval_minutes), threads=args.threads, device=args.device, workers=args.workers)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
