"""Re-tune the Transformer-XL rescoring weights (docs/language-models.md): 8-best lists of real_dev_lj and
test_an4 through the served path, scored once, then a grid of alpha x beta chosen on real_dev_lj's even half."""

import itertools
import json
from pathlib import Path

import numpy as np

from app.asr.audio import decode_audio
from app.asr.bundle import load_bundles
from app.asr.metrics import error_rates
from app.asr.options import DecodeOptions
from app.asr.recognizer import Recognizer
from app.asr.rescoring import count_words
from app.asr.text import normalize_text
from models.train.manifest import read_manifest

b = load_bundles(Path("models/bundles"), threads=1, precisions=("int8",))
r = Recognizer(b, default_model="wav2letter-asg", threads=1)
bundle = r.bundle(None)
scorer = r._rescorer(bundle)
sets = {"lj": "../shared/data/real_dev_lj/manifest.jsonl", "an4": "data/corpus40/test_an4.jsonl"}
tables = {}
for name, path in sets.items():
    rows = read_manifest(Path(path))
    table = []
    for row in rows:
        audio = decode_audio(Path(row["audio"]).read_bytes(), sample_rate=bundle.manifest.sample_rate, max_seconds=600)
        out = r.transcribe(audio.samples, model=None, options=DecodeOptions(decoder="beam", nbest=8, punctuate=False))
        texts = [n.text for n in out.nbest]
        txl = np.asarray(scorer.score(texts).logprobs) if texts else np.zeros(0)
        table.append(
            (
                normalize_text(row["text"]),
                texts,
                np.array([n.score for n in out.nbest]),
                txl,
                np.array([count_words(t) for t in texts]),
            )
        )
    tables[name] = table
    print(name, len(table), flush=True)


def wer(table, alpha, beta):
    hyps = [
        texts[int(np.argmax(total + alpha * txl + beta * words))] if texts else ""
        for ref, texts, total, txl, words in table
    ]
    return error_rates([(t[0], h) for t, h in zip(table, hyps, strict=True)])[0]


parts = {"lj_even": tables["lj"][0::2], "lj_odd": tables["lj"][1::2], "lj": tables["lj"], "an4": tables["an4"]}
rows = []
for alpha, beta in itertools.product((0.0, 0.1, 0.25, 0.5, 0.75, 1.0), (-2.0, -1.0, 0.0, 1.0, 2.0, 4.0)):
    rows.append({"alpha": alpha, "beta": beta, **{k: round(wer(v, alpha, beta), 2) for k, v in parts.items()}})
    print(json.dumps(rows[-1]), flush=True)
best = min(rows, key=lambda x: (x["lj_even"], x["alpha"] == 0.0))
print("best on lj_even:", json.dumps(best))
print(
    "oracle:",
    {
        k: round(
            error_rates([(t[0], min(t[1], key=lambda h: error_rates([(t[0], h)])[0]) if t[1] else "") for t in v])[0], 2
        )
        for k, v in parts.items()
    },
)
