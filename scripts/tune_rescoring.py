"""Re-tune the Transformer-XL rescoring weights for the shipped n-gram LM (docs/language-models.md).

    python scripts/tune_rescoring.py [--nbest 32] [--lm models/bundles/txl-char] [--cache runs/rescore-tune/nbest32.json]

The n-best lists of real_dev_lj, test_an4 and the real_more dev speaker through the served path (`Recognizer.transcribe`:
the bundle's beam, LM weights and speaker normalisation) are decoded once and kept in
`--cache` (texts and decoder totals), so trying another Transformer-XL costs no decoding.
They are scored by the rescorer (`--lm`, default: the bundle the acoustic bundle names), then a
grid of alpha x beta is chosen on real_dev_lj's even half and reported on its odd half, AN4 and the real_more dev speaker,
beside the oracle of the first 8 and of all `--nbest`. Unlike `asr-export tune`, the LM weights
stay the bundle's.
"""

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from app.asr.audio import decode_audio
from app.asr.bundle import load_bundles
from app.asr.manifest import Manifest
from app.asr.metrics import error_rates
from app.asr.options import DecodeOptions
from app.asr.recognizer import Recognizer
from app.asr.rescoring import TransformerXLScorer, count_words
from app.asr.text import normalize_text
from export.tune import NbestScores, rescored_texts
from models.train.manifest import read_manifest

SETS = {"lj": "../shared/data/real_dev_lj/manifest.jsonl", "an4": "data/test_an4.jsonl",  # the same clips as data/corpus40/test_an4.jsonl
        "ls19": "data/real_more/dev.jsonl"}  # the held-out real_more speaker (LibriSpeech 19)
ALPHAS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)
BETAS = (-2.0, -1.0, 0.0, 1.0, 2.0, 4.0)


def decode_lists(recognizer: Recognizer, manifest: Path, nbest: int) -> list[dict]:
    """Per clip: the reference and the n-best texts with the decoder's totals."""
    bundle = recognizer.bundle(None)
    rows = []
    for row in read_manifest(manifest):
        audio = decode_audio(Path(row["audio"]).read_bytes(), sample_rate=bundle.manifest.sample_rate, max_seconds=600)
        out = recognizer.transcribe(audio.samples, model=None, options=DecodeOptions(decoder="beam", nbest=nbest, punctuate=False))
        rows.append({"ref": normalize_text(row["text"]), "texts": [n.text for n in out.nbest], "totals": [n.score for n in out.nbest]})
    return rows


def scored(rows: list[dict], scorer: TransformerXLScorer, limit: int) -> list[NbestScores]:
    table = []
    for row in rows:
        texts, totals = row["texts"][:limit], np.array(row["totals"][:limit])
        txl = np.asarray(scorer.score(texts).logprobs) if texts else np.zeros(0)
        table.append(NbestScores(texts, totals, txl, np.array([count_words(t) for t in texts])))
    return table


def wer(refs: list[str], hyps: list[str]) -> float:
    return round(error_rates(list(zip(refs, hyps, strict=True)))[0], 2)


def oracle(refs: list[str], table: list[NbestScores]) -> float:
    return wer(refs, [min(n.texts, key=lambda h, r=r: wer([r], [h])) if n.texts else "" for r, n in zip(refs, table, strict=True)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nbest", type=int, default=8, help="hypotheses decoded and rescored per clip (at most 32)")
    parser.add_argument("--lm", type=Path, help="Transformer-XL bundle directory (default: the acoustic bundle's rescorer)")
    parser.add_argument("--cache", type=Path, help="JSON of decoded n-best lists: read if present, else written")
    args = parser.parse_args()
    recognizer = Recognizer(load_bundles(Path("models/bundles"), threads=1, precisions=("int8",)), default_model=None, threads=1)  # the default bundle
    if args.cache is not None and args.cache.is_file():
        decoded = json.loads(args.cache.read_text())
    else:
        decoded = {name: decode_lists(recognizer, Path(path), args.nbest) for name, path in SETS.items()}
        if args.cache is not None:
            args.cache.parent.mkdir(parents=True, exist_ok=True)
            args.cache.write_text(json.dumps(decoded))
    if args.lm is not None:
        scorer = TransformerXLScorer.from_bundle(args.lm, Manifest.load(args.lm), threads=1)
    else:
        scorer = recognizer._rescorer(recognizer.bundle(None))
    refs = {name: [r["ref"] for r in rows] for name, rows in decoded.items()}
    lists = {name: scored(rows, scorer, args.nbest) for name, rows in decoded.items()}
    parts = {"lj_even": (refs["lj"][0::2], lists["lj"][0::2]), "lj_odd": (refs["lj"][1::2], lists["lj"][1::2]),
             "lj": (refs["lj"], lists["lj"]), "an4": (refs["an4"], lists["an4"])}  # fmt: skip
    if "ls19" in lists:  # caches written before the held-out real_more speaker joined have no ls19
        parts["ls19"] = (refs["ls19"], lists["ls19"])
    rows = []
    for alpha, beta in itertools.product(ALPHAS, BETAS):
        rows.append({"alpha": alpha, "beta": beta, **{k: wer(r, rescored_texts(table, alpha, beta)) for k, (r, table) in parts.items()}})
        print(json.dumps(rows[-1]), flush=True)
    print("best on lj_even:", json.dumps(min(rows, key=lambda x: (x["lj_even"], x["alpha"] == 0.0))))
    for limit in sorted({8, args.nbest}):
        print(f"oracle of {limit}:", {k: oracle(r, [NbestScores(n.texts[:limit], n.totals[:limit], n.txl[:limit], n.words[:limit]) for n in table])
                                       for k, (r, table) in parts.items()})  # fmt: skip


if __name__ == "__main__":
    main()
