"""Re-tune the Transformer-XL rescoring weights for the shipped n-gram LM (docs/language-models.md).

    python scripts/tune_rescoring.py

The 8-best lists of real_dev_lj and test_an4 through the served path (`Recognizer.transcribe`:
the bundle's beam, LM weights and speaker normalisation), scored once by the rescorer
(`export.tune.score_nbest`), then a grid of alpha x beta chosen on real_dev_lj's even half and
reported on its odd half and AN4, beside the 8-best oracle. Unlike `asr-export tune`, the LM
weights stay the bundle's.
"""

import itertools
import json
from pathlib import Path

from app.asr.audio import decode_audio
from app.asr.bundle import load_bundles
from app.asr.metrics import error_rates
from app.asr.options import DecodeOptions
from app.asr.recognizer import Recognizer
from app.asr.text import normalize_text
from export.tune import NbestScores, rescored_texts, score_nbest
from models.train.manifest import read_manifest

SETS = {"lj": "../shared/data/real_dev_lj/manifest.jsonl", "an4": "data/corpus40/test_an4.jsonl"}
ALPHAS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)
BETAS = (-2.0, -1.0, 0.0, 1.0, 2.0, 4.0)


def nbest_lists(recognizer: Recognizer, manifest: Path) -> tuple[list[str], list[NbestScores]]:
    bundle = recognizer.bundle(None)
    refs, outs = [], []
    for row in read_manifest(manifest):
        audio = decode_audio(Path(row["audio"]).read_bytes(), sample_rate=bundle.manifest.sample_rate, max_seconds=600)
        outs.append(recognizer.transcribe(audio.samples, model=None, options=DecodeOptions(decoder="beam", nbest=8, punctuate=False)))
        refs.append(normalize_text(row["text"]))
    return refs, score_nbest(recognizer, bundle, outs)


def wer(refs: list[str], hyps: list[str]) -> float:
    return round(error_rates(list(zip(refs, hyps, strict=True)))[0], 2)


def main() -> None:
    recognizer = Recognizer(load_bundles(Path("models/bundles"), threads=1, precisions=("int8",)), default_model="wav2letter-asg", threads=1)
    lists = {name: nbest_lists(recognizer, Path(path)) for name, path in SETS.items()}
    (lj_refs, lj), (an4_refs, an4) = lists["lj"], lists["an4"]
    parts = {"lj_even": (lj_refs[0::2], lj[0::2]), "lj_odd": (lj_refs[1::2], lj[1::2]), "lj": (lj_refs, lj), "an4": (an4_refs, an4)}
    rows = []
    for alpha, beta in itertools.product(ALPHAS, BETAS):
        rows.append({"alpha": alpha, "beta": beta, **{k: wer(refs, rescored_texts(table, alpha, beta)) for k, (refs, table) in parts.items()}})
        print(json.dumps(rows[-1]), flush=True)
    print("best on lj_even:", json.dumps(min(rows, key=lambda x: (x["lj_even"], x["alpha"] == 0.0))))
    oracle = {k: wer(refs, [min(n.texts, key=lambda h, r=r: wer([r], [h])) if n.texts else "" for r, n in zip(refs, table, strict=True)])
              for k, (refs, table) in parts.items()}  # fmt: skip
    print("oracle:", oracle)


if __name__ == "__main__":
    main()
