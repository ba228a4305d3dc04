"""When the first partial of a stream comes, measured from the first letter the offline model hears.

    .venv/bin/python scripts/first_partial.py [MODELS_DIR]   # 20 real_dev_lj clips through the default bundle in 20 ms messages

Audio time only (the stream is fed as fast as it computes); one JSON line.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import json  # noqa: E402

import numpy as np  # noqa: E402

from app.asr.audio import decode_audio  # noqa: E402
from app.asr.options import DecodeOptions  # noqa: E402
from app.asr.recognizer import quiet_frames  # noqa: E402
from app.asr.streaming import Stream, StreamOptions  # noqa: E402
from app.cli import _offline_recognizer  # noqa: E402

rec, bundle = _offline_recognizer(Path(sys.argv[1] if len(sys.argv) > 1 else "models/bundles"), "whisper-ctc-base")
model = bundle.model()
rows = [json.loads(line) for line in open("../shared/data/real_dev_lj/manifest.jsonl")][:20]
lat, onsets = [], []
for r in rows:
    a = decode_audio(Path("../shared/data/real_dev_lj", r["audio"]).read_bytes(), sample_rate=16000, max_seconds=60).samples
    em = model.emissions(a)
    loud = np.flatnonzero(~quiet_frames(em, bundle.manifest.tokens))
    onset = loud[0] * 0.02 if len(loud) else 0.0  # first letter frame offline
    s = Stream(rec, bundle, model, DecodeOptions(decoder="greedy"), StreamOptions())
    t_first = None
    for i in range(0, len(a), 320):
        out = s.accept(a[i:i+320])
        if any(x.kind == "partial" and x.text for x in out):
            t_first = (i + 320) / 16000
            break
    lat.append(t_first - onset)
    onsets.append(onset)
print(json.dumps({"clips": len(lat), "first_partial_after_first_letter_s": {"median": float(np.median(lat)), "p95": float(np.percentile(lat, 95)), "max": float(np.max(lat))},
                  "first_partial_after_audio_start_s": {"median": float(np.median([x + o for x, o in zip(lat, onsets, strict=True)])), "max": float(np.max([x + o for x, o in zip(lat, onsets, strict=True)]))}}))
