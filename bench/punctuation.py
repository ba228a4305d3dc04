"""asr-bench section 7: the punctuation tagger's time per second of audio against the acoustic model's.

The acoustic model (the benchmark's Wav2Letter bundle, ORT fp32, one thread) runs on
`seconds` of speech-like audio; the tagger (the punctuation bundle of the models directory,
its shipped precision, one thread) punctuates the transcript such audio would have: words at
`WORDS_PER_SECOND`, taken from a passage of ordinary prose, as one transcript, with ITN. Both
are timed as the median of `repeats` runs; the share is the tagger's time over the model's.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from app.asr.manifest import MANIFEST_NAME, Manifest
from app.asr.text import normalize_text
from bench.inputs import BuiltBundle, speechlike

WORDS_PER_SECOND = 2.7  # read speech
PROSE = ("he turned sharply and faced gregson across the table it was a bright cold day in april and the clocks were striking thirteen "
         "who is it she asked and nobody answered so they walked to the store to buy some bread and twenty five apples "
         "the children were playing in the garden while the dog slept by the fire nothing broke the stillness but the soft crackle of the flames")


def find_punctuation_bundle(models_dir: Path) -> Path | None:
    for manifest in sorted(models_dir.glob(f"*/{MANIFEST_NAME}")):
        try:
            if Manifest.load(manifest.parent, verify=False).kind == "punctuation":
                return manifest.parent
        except ValueError:
            continue
    return None


def _median_seconds(fn: Any, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure_punctuation(models_dir: Path, acoustic: BuiltBundle, *, seconds: float, repeats: int) -> dict[str, Any]:
    from app.asr.punctuation import Punctuator
    from export.onnx_utils import cpu_session

    directory = find_punctuation_bundle(models_dir)
    if directory is None:
        return {"skipped": f"no punctuation bundle under {models_dir}"}
    manifest = Manifest.load(directory)
    punctuator = Punctuator.from_bundle(directory, manifest, threads=1)
    prose = normalize_text(PROSE).split()
    words = (prose * (int(seconds * WORDS_PER_SECOND) // len(prose) + 1))[: max(1, int(seconds * WORDS_PER_SECOND))]
    samples = speechlike(seconds, seed=1)[None]
    session = cpu_session(acoustic.directory / acoustic.manifest.files["fp32"].path)
    name = session.get_inputs()[0].name
    acoustic_seconds = _median_seconds(lambda: session.run(None, {name: samples}), repeats)
    tagger_seconds = _median_seconds(lambda: punctuator.punctuate(words, itn=True), repeats)
    return {"bundle": manifest.name, "precision": "int8" if "int8" in manifest.files else "fp32", "audio_seconds": seconds, "words": len(words),
            "acoustic_ms_per_audio_second": 1000 * acoustic_seconds / seconds, "punctuation_ms_per_audio_second": 1000 * tagger_seconds / seconds,
            "share_of_acoustic": tagger_seconds / acoustic_seconds, "acoustic_note": acoustic.note, "repeats": repeats}
