"""Streamed WER against offline WER on a manifest, and where the difference comes from.

For each clip, the model runs once offline (and once per extra VTLN warp) and once per decoder
through `app.asr.streaming.Stream` (the engine behind `WS /v1/stream`), fed in pieces of
`--piece-ms`. Each decoder is then scored four ways:

- `streamed`: the joined finals, as `asr-eval --stream` scores them;
- `segments`: the offline emissions cut where the stream's finals start and end, each piece
  decoded on its own: equals `streamed` when the only difference is the segmentation;
- `offline_no_vtln`: the whole clip decoded at once, without speaker normalisation (streams have none);
- `offline`: the whole clip with the bundle's defaults (`asr-eval`).

Usage: .venv/bin/python scripts/stream_vs_offline.py MANIFEST [--decoders greedy,beam] [--piece-ms 160]
One JSON line per decoder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.asr.audio import decode_audio  # noqa: E402
from app.asr.metrics import error_rates  # noqa: E402
from app.asr.options import DecodeOptions, resolve  # noqa: E402
from app.asr.streaming import Stream, StreamOptions  # noqa: E402
from app.asr.text import normalize_text  # noqa: E402
from app.asr.vtln import most_confident, warp_spectrum  # noqa: E402
from app.cli import _offline_recognizer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--model", default="whisper-ctc-base")
    parser.add_argument("--models-dir", type=Path, default=Path("models/bundles"))
    parser.add_argument("--decoders", default="greedy,beam")
    parser.add_argument("--piece-ms", type=float, default=160.0)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--no-whole-finals", action="store_true", help="finals from the streamed emissions (chunked models: the block mask) instead of a pass over each utterance")
    args = parser.parse_args()
    recognizer, bundle = _offline_recognizer(args.models_dir, args.model)
    model = bundle.model()
    frame_seconds = model.geometry.stride / bundle.manifest.sample_rate
    piece = max(1, int(args.piece_ms * bundle.manifest.sample_rate / 1000))
    decoders = args.decoders.split(",")
    options = {d: DecodeOptions(decoder=d, vtln=False) for d in decoders}
    warps = resolve(DecodeOptions(), bundle).vtln_warps
    ways = ("streamed", "segments", "offline_no_vtln", "offline")
    pairs: dict[str, dict[str, list[tuple[str, str]]]] = {d: {w: [] for w in ways} for d in decoders}
    equal = {d: 0 for d in decoders}
    finals_per_clip: dict[str, list[int]] = {d: [] for d in decoders}

    def text(transcript, opts) -> str:  # type: ignore[no-untyped-def]
        return recognizer.present(transcript, opts).to_json()["raw_text"]

    rows = [json.loads(line) for line in args.manifest.read_text().splitlines() if line.strip()][: args.limit]
    for row in rows:
        path = Path(row["audio"])
        path = path if path.is_absolute() else args.manifest.parent / path
        audio = decode_audio(path.read_bytes(), sample_rate=bundle.manifest.sample_rate, max_seconds=3600).samples
        reference = normalize_text(row["text"])
        emissions = model.emissions(audio)
        warped = most_confident(warps, [emissions if w == 1.0 else model.emissions(warp_spectrum(audio, w)) for w in warps])[1] if warps else emissions
        for decoder, opts in options.items():
            stream = Stream(recognizer, bundle, model, opts, StreamOptions(interim_results=False, whole_finals=not args.no_whole_finals))
            results = [r for start in range(0, len(audio), piece) for r in stream.accept(audio[start : start + piece])] + stream.finish()
            finals = [r for r in results if r.kind == "final" and r.transcript is not None]
            streamed = " ".join(t for r in finals if (t := r.transcript.to_json()["raw_text"]))  # type: ignore[union-attr]
            pieces = []
            for r in finals:
                a, b = round(r.start / frame_seconds), round(r.end / frame_seconds)
                pieces.append(text(recognizer.decode(bundle, emissions[a:b], opts, duration=(b - a) * frame_seconds, frame_offset=a), opts))
            segments = " ".join(p for p in pieces if p)
            whole = text(recognizer.decode(bundle, emissions, opts, duration=len(audio) / bundle.manifest.sample_rate), opts)
            vtln = text(recognizer.decode(bundle, warped, opts, duration=len(audio) / bundle.manifest.sample_rate), opts)
            for way, hypothesis in zip(ways, (streamed, segments, whole, vtln), strict=True):
                pairs[decoder][way].append((reference, hypothesis))
            equal[decoder] += streamed == segments
            finals_per_clip[decoder].append(len(finals))
    for decoder in decoders:
        scores = {way: [round(x, 2) for x in error_rates(p)] for way, p in pairs[decoder].items()}
        print(json.dumps({"manifest": str(args.manifest), "model": bundle.name, "decoder": decoder, "piece_ms": args.piece_ms, "whole_finals": not args.no_whole_finals, "clips": len(rows),
                          "streamed_equals_segments": equal[decoder], "finals_per_clip": round(float(np.mean(finals_per_clip[decoder])), 2),
                          "multi_final_clips": sum(n > 1 for n in finals_per_clip[decoder]), "wer_cer": scores}), flush=True)


if __name__ == "__main__":
    main()
