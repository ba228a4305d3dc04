"""Compare lexicons, n-gram LMs and decoding weights on cached emissions.

    python -m models.lm.evaluate emissions --bundle models/bundles/wav2letter-asg \
        --manifest ../shared/data/real_dev_lj/manifest.jsonl --out runs/lmtest/real_dev_lj.npz
    python -m models.lm.evaluate decode --bundle runs/lmtest/wav2letter-asg --emissions runs/lmtest/real_dev_lj.npz \
        --lm-weights 0.5 1 1.5 --word-scores -1 0 1 --half even --nbest 16

`emissions` runs the bundle's acoustic model once per file the way the recognizer does (fp32
where the bundle has it, else int8, or `--precision`; VTLN: the most confident of the bundle's `vtln_warps`) and stores the `[T, V]` emissions with
the normalised references. `decode` then runs only the search (`Recognizer.decode`, so the
same engine choice as the server: the fast engine when flashlight-text is there) with the
lexicon and LM of `--bundle` (its acoustic model is loaded but not run), over a grid of LM
weights and word scores, and prints one JSON line per setting: WER, CER and, with `--nbest`,
the n-best oracle WER (each utterance scored by its best hypothesis among the n-best).
`--half even|odd` keeps the utterances of even or odd index only: two disjoint halves, one to
tune on and one to report. `--decoder greedy` scores the best path alone (no LM, one row).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

from app.asr.audio import decode_audio
from app.asr.bundle import AcousticBundle, BundleSet, load_acoustic
from app.asr.manifest import Manifest
from app.asr.metrics import edit_distance, error_rates
from app.asr.options import DecodeOptions
from app.asr.recognizer import Recognizer
from app.asr.runtime import select_providers
from app.asr.text import normalize_text
from app.asr.vtln import best_warp
from models.train.manifest import read_manifest


def load_bundle(directory: Path, precision: str = "fp32") -> tuple[Recognizer, AcousticBundle]:
    manifest = Manifest.load(directory)
    bundle = load_acoustic(directory, manifest, threads=1, providers=select_providers("cpu"), precisions=(precision,))
    return Recognizer(BundleSet(acoustic={manifest.name: bundle}), default_model=manifest.name), bundle


def compute_emissions(bundle: AcousticBundle, manifest: Path, *, limit: int | None,
                      precision: str = "auto") -> tuple[list[np.ndarray], list[str], list[str]]:
    rows = read_manifest(manifest, limit=limit)
    model = bundle.model(None if precision == "auto" else precision)
    warps = tuple(bundle.manifest.decoding.vtln_warps or ())
    emissions, refs, names = [], [], []
    for row in rows:
        samples = decode_audio(Path(row["audio"]).read_bytes(), sample_rate=bundle.manifest.sample_rate, max_seconds=3600).samples
        emissions.append(best_warp(samples, warps, model.emissions)[1] if warps else model.emissions(samples))
        refs.append(normalize_text(row["text"]))
        names.append(row["audio"])
    return emissions, refs, names


def save_emissions(path: Path, emissions: list[np.ndarray], refs: list[str], names: list[str]) -> None:
    arrays = {f"e{i}": e.astype(np.float32) for i, e in enumerate(emissions)}
    np.savez_compressed(path, refs=np.array(refs), names=np.array(names), **arrays)


def load_emissions(path: Path) -> tuple[list[np.ndarray], list[str]]:
    data = np.load(path)
    refs = [str(r) for r in data["refs"]]
    return [data[f"e{i}"] for i in range(len(refs))], refs


def oracle_wer(refs: list[str], nbests: list[list[str]]) -> float:
    errors = sum(min((edit_distance(ref.split(), h.split()) for h in hyps), default=len(ref.split())) for ref, hyps in zip(refs, nbests, strict=True))
    return 100.0 * errors / max(sum(len(r.split()) for r in refs), 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m models.lm.evaluate", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("emissions")
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--limit", type=int)
    p.add_argument("--precision", choices=("auto", "fp32", "int8"), default="auto",
                   help="acoustic graph to run; auto: fp32 where the bundle has it, else int8 (an int8-only bundle)")
    p = sub.add_parser("decode")
    p.add_argument("--bundle", type=Path, required=True, help="the lexicon, LM and defaults to decode with")
    p.add_argument("--emissions", type=Path, required=True)
    p.add_argument("--lm-weights", type=float, nargs="*", help="default: the bundle's")
    p.add_argument("--word-scores", type=float, nargs="*", help="default: the bundle's")
    p.add_argument("--beam-size", type=int)
    p.add_argument("--decoder", choices=("beam", "greedy"), default="beam", help="greedy: best path alone (one row, no LM)")
    p.add_argument("--nbest", type=int, default=1)
    p.add_argument("--half", choices=("all", "even", "odd"), default="all")
    p.add_argument("--show", type=int, default=0, help="print the first N (reference, hypothesis) pairs of each setting")
    args = parser.parse_args(argv)

    if args.command == "emissions":
        _, bundle = load_bundle(args.bundle, "fp32" if args.precision == "auto" else args.precision)
        started = time.perf_counter()
        emissions, refs, names = compute_emissions(bundle, args.manifest, limit=args.limit, precision=args.precision)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        save_emissions(args.out, emissions, refs, names)
        print(json.dumps({"utterances": len(refs), "seconds": round(time.perf_counter() - started, 1), "out": str(args.out)}))
        return

    recognizer, bundle = load_bundle(args.bundle)
    emissions, refs = load_emissions(args.emissions)
    keep = [i for i in range(len(refs)) if args.half == "all" or i % 2 == (0 if args.half == "even" else 1)]
    defaults = bundle.manifest.decoding
    grid = itertools.product(args.lm_weights or [defaults.lm_weight], args.word_scores or [defaults.word_score])
    for lm_weight, word_score in ([(defaults.lm_weight, defaults.word_score)] if args.decoder == "greedy" else grid):
        options = DecodeOptions(decoder=args.decoder, beam_size=args.beam_size, nbest=args.nbest, lm_weight=lm_weight, word_score=word_score,
                                word_timestamps=False)
        started = time.perf_counter()
        outs = [recognizer.decode(bundle, emissions[i], options, duration=0.0) for i in keep]
        seconds = time.perf_counter() - started
        pairs = [(refs[i], o.text) for i, o in zip(keep, outs, strict=True)]
        wer, cer = error_rates(pairs)
        result = {"bundle": str(args.bundle), "emissions": args.emissions.name, "decoder": args.decoder, "half": args.half, "utterances": len(keep),
                  "lm_weight": lm_weight, "word_score": word_score, "wer": round(wer, 2), "cer": round(cer, 2), "decode_s": round(seconds, 1)}
        if args.nbest > 1:
            result["nbest"] = args.nbest
            result["oracle_wer"] = round(oracle_wer([refs[i] for i in keep], [[n.text for n in o.nbest] for o in outs]), 2)
        print(json.dumps(result), flush=True)
        for ref, hyp in pairs[: args.show]:
            print(f"REF: {ref}\nHYP: {hyp}")


if __name__ == "__main__":
    main()
