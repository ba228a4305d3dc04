"""Section 4 of `asr-bench`: the decoders on the same emissions, as time per second of audio.

Greedy CTC, lexicon-free beam search at several widths, beam search with the lexicon and the
n-gram LM, and beam + LM + Transformer-XL rescoring of the 8-best, all on one `EmissionSet`;
then pyctcdecode at the same widths and LM (alpha = lm_weight, beta = word_score; both
libraries take the LM in natural-log units) in its own interpreter, fed the same emissions
through an `.npz` file. WER is against the references the emissions were made from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from app.asr.decoders import BeamOptions, beam_search, ctc_segments
from app.asr.kenlm_binary import load_lm
from app.asr.lexicon import Lexicon
from app.asr.manifest import DecodingDefaults
from app.asr.metrics import error_rates
from app.asr.rescoring import TransformerXLScorer, rescore
from bench.inputs import BuiltBundle, EmissionSet

RESCORE_NBEST = 8
PRUNE = 10.0  # beam_threshold = pyctcdecode's default beam_prune_logp (-10)
TOKEN_PRUNE = 5.0  # token_threshold ~ its token_min_logp (-5; absolute there, below the frame's best here)


def decode_all(emissions: EmissionSet, decode: Callable[[np.ndarray], str], *, rounds: int) -> tuple[float, list[str]]:
    """The best of `rounds` passes over every utterance (the least disturbed by the rest of the machine), and the texts."""
    best, texts = float("inf"), []
    for _ in range(rounds):
        started = time.perf_counter()
        texts = [decode(e) for e in emissions.emissions]
        best = min(best, time.perf_counter() - started)
    return best, texts


def our_decoders(emissions: EmissionSet, *, arpa: Path, lexicon_path: Path, txl: BuiltBundle, widths: tuple[int, ...],
                 lm_widths: tuple[int, ...], threads: int, rounds: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """`(runs, setup)`: one run per decoder configuration, and what loading the LMs took."""
    table = emissions.tokens
    blank = table.blank_id
    assert blank is not None
    defaults = DecodingDefaults()
    lexicon = Lexicon.from_file(lexicon_path, word_separator=table.word_separator)
    started = time.perf_counter()
    lm = load_lm(arpa, words=lexicon.words)  # ARPA (read in Python) or a KenLM binary (the shipped default)
    lm_load = time.perf_counter() - started
    scorer = TransformerXLScorer.from_bundle(txl.directory, txl.manifest, threads=threads)
    # pyctcdecode's default pruning (beam_prune_logp -10, token_min_logp -5) for every beam run, so both prune alike; words kept to
    # the lexicon (the fast engine's case); `+oov` rows let words outside it in (the Python engine's case).
    options = BeamOptions(lm_weight=defaults.lm_weight, word_score=defaults.word_score, unk_score=defaults.unk_score, allow_oov=False,
                          beam_threshold=PRUNE, token_threshold=TOKEN_PRUNE)  # fmt: skip

    def greedy(e: np.ndarray) -> str:
        return table.decode([tok for tok, _ in ctc_segments(e.argmax(axis=1), blank)])

    def beam(width: int, *, with_lm: bool, engine: str = "auto", allow_oov: bool = False, prune_tokens: bool = True) -> Callable[[np.ndarray], str]:
        chosen = options if prune_tokens else replace(options, token_threshold=None)

        def run(e: np.ndarray) -> str:
            hyps = beam_search(e, criterion="ctc", tokens=table, options=chosen, beam_size=width, lm=lm if with_lm else None,
                               lexicon=lexicon if with_lm else None, engine=engine, allow_oov=allow_oov)  # type: ignore[arg-type]  # fmt: skip
            return table.decode(hyps[0].tokens) if hyps else ""

        return run

    def rescored(e: np.ndarray) -> str:
        hyps = beam_search(e, criterion="ctc", tokens=table, options=options, beam_size=16, nbest=RESCORE_NBEST, lm=lm, lexicon=lexicon)
        if not hyps:
            return ""
        return rescore(hyps, scorer=scorer, alpha=defaults.rescore_alpha, beta=defaults.rescore_beta)[0].hypothesis.text

    configs: list[tuple[str, int, bool, Callable[[np.ndarray], str]]] = [("greedy", 1, False, greedy)]
    configs += [(f"beam{w}", w, False, beam(w, with_lm=False)) for w in widths]
    configs += [(f"beam{w}+lm", w, True, beam(w, with_lm=True)) for w in lm_widths]
    first = lm_widths[0]
    configs.append((f"beam{first}+lm python", first, True, beam(first, with_lm=True, engine="python")))  # the engine's own speed-up
    configs.append((f"beam{first}+lm+oov", first, True, beam(first, with_lm=True, allow_oov=True)))  # Python engine: any spelling
    configs.append((f"beam{first}+lm all-tokens", first, True, beam(first, with_lm=True, prune_tokens=False)))  # no token pruning
    configs.append((f"beam16+lm+txl{RESCORE_NBEST}", 16, True, rescored))
    for *_, fn in configs:  # warm-up: the TXL session's kernels, each engine's trie and KenLM model
        fn(emissions.emissions[0])
    runs = []
    for name, width, with_lm, fn in configs:
        seconds, texts = decode_all(emissions, fn, rounds=rounds)
        wer, cer = error_rates(list(zip(emissions.references, texts, strict=True)))
        runs.append({"name": name, "beam": width, "lm": with_lm, "seconds": seconds, "seconds_per_audio_second": seconds / emissions.seconds,
                     "wer": wer, "cer": cer})  # fmt: skip
    setup = {"lm_load_seconds": lm_load, "lm_words": len(lexicon), "txl": txl.note}
    return runs, setup


def pyctcdecode_python(explicit: Path | None) -> Path | None:
    """The interpreter of a virtualenv holding pyctcdecode: the flag, `ASR_BENCH_PYCTCDECODE`, or `.bench-venv`."""
    candidates = [explicit] if explicit else []
    if os.environ.get("ASR_BENCH_PYCTCDECODE"):
        candidates.append(Path(os.environ["ASR_BENCH_PYCTCDECODE"]))
    candidates.append(Path(__file__).resolve().parent.parent / ".bench-venv" / "bin" / "python")
    return next((c for c in candidates if c is not None and c.is_file()), None)


def pyctcdecode_runs(python: Path, emissions: EmissionSet, *, arpa: Path, lexicon_path: Path, widths: tuple[int, ...],
                     lm_widths: tuple[int, ...], rounds: int, timeout: float) -> dict[str, Any]:
    """Run `bench/pyctcdecode.py` under `python` on the same emissions; WER added here."""
    defaults = DecodingDefaults()
    labels = ["" if t == emissions.tokens.blank else " " if t == emissions.tokens.word_separator else t for t in emissions.tokens.tokens]
    unigrams = list(Lexicon.from_file(lexicon_path, word_separator=emissions.tokens.word_separator).words)
    runs = [{"name": f"beam{w}", "beam": w, "lm": False} for w in widths] + [{"name": f"beam{w}+lm", "beam": w, "lm": True} for w in lm_widths]
    with tempfile.TemporaryDirectory() as work:
        npz, job = Path(work) / "emissions.npz", Path(work) / "job.json"
        np.savez(npz, **{f"u{i}": e.astype(np.float32) for i, e in enumerate(emissions.emissions)})
        job.write_text(json.dumps({"emissions": str(npz), "labels": labels, "arpa": str(arpa), "unigrams": unigrams, "alpha": defaults.lm_weight,
                                   "beta": defaults.word_score, "beam_prune_logp": -PRUNE, "token_min_logp": -TOKEN_PRUNE, "runs": runs,
                                   "rounds": rounds}))  # fmt: skip
        script = Path(__file__).with_name("bench_pyctcdecode.py")
        done = subprocess.run([str(python), str(script), str(job)], capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        return {"available": False, "reason": f"{python} failed: {done.stderr.strip().splitlines()[-1][:300] if done.stderr.strip() else done.returncode}"}
    result = json.loads(done.stdout)
    for run in result["runs"]:
        run["wer"], run["cer"] = error_rates(list(zip(emissions.references, run.pop("texts"), strict=True)))
        run["seconds_per_audio_second"] = run["seconds"] / emissions.seconds
    return {"available": True, "python": str(python), **result}


def compare(ours: list[dict[str, Any]], theirs: dict[str, Any]) -> list[dict[str, Any]]:
    """Per configuration both ran: their time over ours (> 1: ours is faster)."""
    if not theirs.get("available"):
        return []
    by_name = {r["name"]: r for r in ours}
    rows = []
    for run in theirs["runs"]:
        mine = by_name.get(run["name"])
        if mine is not None:
            rows.append({"name": run["name"], "ours_seconds": mine["seconds"], "pyctcdecode_seconds": run["seconds"],
                         "ours_faster_by": run["seconds"] / max(mine["seconds"], 1e-9), "ours_wer": mine["wer"], "pyctcdecode_wer": run["wer"]})  # fmt: skip
    return rows


def measure_decoders(emissions: EmissionSet, *, arpa: Path, lexicon_path: Path, lm_note: str, txl: BuiltBundle, widths: tuple[int, ...],
                     lm_widths: tuple[int, ...], threads: int, python: Path | None, rounds: int = 1, timeout: float = 600.0) -> dict[str, Any]:
    runs, setup = our_decoders(emissions, arpa=arpa, lexicon_path=lexicon_path, txl=txl, widths=widths, lm_widths=lm_widths, threads=threads,
                               rounds=rounds)  # fmt: skip
    if python is None:
        theirs: dict[str, Any] = {"available": False, "reason": "no interpreter with pyctcdecode (make .bench-venv, see docs/benchmarks.md)"}
    else:
        try:
            theirs = pyctcdecode_runs(python, emissions, arpa=arpa, lexicon_path=lexicon_path, widths=widths, lm_widths=lm_widths, rounds=rounds, timeout=timeout)
        except (subprocess.TimeoutExpired, OSError, json.JSONDecodeError) as e:
            theirs = {"available": False, "reason": f"{type(e).__name__}: {str(e)[:200]}"}
    return {"emissions": emissions.note, "audio_seconds": emissions.seconds, "utterances": len(emissions.emissions), "lm": lm_note, "rounds": rounds, **setup,
            "ours": runs, "pyctcdecode": theirs, "comparison": compare(runs, theirs), "python": sys.version.split()[0]}  # fmt: skip
