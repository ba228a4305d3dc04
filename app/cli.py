"""Command-line entry points: `asr-server`, `asr-transcribe`, `asr-eval` (no torch anywhere)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from app.config import Settings


def serve(argv: list[str] | None = None) -> None:
    """Run the HTTP/WebSocket server on every bundle under the models directory."""
    parser = argparse.ArgumentParser(prog="asr-server", description="Serve speech recognition bundles over HTTP and WebSocket.")
    parser.add_argument("--host", help="bind address (ASR_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (ASR_PORT, default 8000)")
    parser.add_argument("--models-dir", type=Path, help="directory of bundles (ASR_MODELS_DIR, default: the bundled models)")
    parser.add_argument("--default-model", help="model used when a request names none (ASR_DEFAULT_MODEL)")
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads per session (ASR_THREADS)")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in {"host": args.host, "port": args.port, "models_dir": args.models_dir, "default_model": args.default_model,
                                   "threads": args.threads}.items() if v is not None}
    settings = Settings(**overrides)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from app.main import create_app
    from app.server import ConnectionLimits, run

    limits = ConnectionLimits(max_connections=settings.max_connections, header_timeout=settings.header_timeout_seconds,
                              idle_timeout=settings.idle_timeout_seconds)
    run(create_app(settings), host=settings.host, port=settings.port, log_level=args.log_level, timeout_graceful_shutdown=30,
        ws_max_size=settings.ws_max_message_bytes, limits=limits, keep_alive=settings.keep_alive_seconds, drain_delay=settings.drain_delay_seconds)


def _offline_recognizer(models_dir: Path | None, model: str | None):  # type: ignore[no-untyped-def]
    from app.asr.bundle import load_bundles
    from app.asr.recognizer import Recognizer

    settings = Settings(**({"models_dir": models_dir} if models_dir else {}))
    bundles = load_bundles(settings.models_dir, threads=settings.resolved_threads(), precisions=("fp32", "int8"))
    for name, reason in bundles.failures.items():
        print(f"warning: bundle {name} refused: {reason}", file=sys.stderr)
    recognizer = Recognizer(bundles, default_model=model or settings.default_model)
    return recognizer, recognizer.bundle(model)


def _decode_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="bundle name (default: the default model)")
    parser.add_argument("--models-dir", type=Path)
    parser.add_argument("--decoder", choices=["greedy", "beam"])
    parser.add_argument("--beam-size", type=int)
    parser.add_argument("--nbest", type=int, default=1)
    parser.add_argument("--no-lm", action="store_true", help="beam search without the n-gram LM")
    parser.add_argument("--rescore", action="store_true", help="Transformer-XL rescoring of the n-best list")
    parser.add_argument("--lm-weight", type=float)
    parser.add_argument("--word-score", type=float)
    parser.add_argument("--allow-oov", action=argparse.BooleanOptionalAction, help="lexicon search: allow words outside the lexicon (default: the bundle's)")
    parser.add_argument("--vtln", action=argparse.BooleanOptionalAction, help="speaker normalisation by frequency warping (default: the bundle's)")
    parser.add_argument("--precision", choices=["fp32", "int8", "fp16"])


def _options(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from app.asr.options import DecodeOptions

    return DecodeOptions(decoder=args.decoder, beam_size=args.beam_size, nbest=args.nbest, lm=False if args.no_lm else None, rescore=args.rescore,
                         lm_weight=args.lm_weight, word_score=args.word_score, allow_oov=args.allow_oov, vtln=args.vtln, precision=args.precision)


def transcribe(argv: list[str] | None = None) -> None:
    """Transcribe files offline through the server's own code path."""
    from tqdm import tqdm

    from app.api.formats import to_srt, to_vtt
    from app.asr.audio import decode_audio
    from app.asr.errors import ASRError

    parser = argparse.ArgumentParser(prog="asr-transcribe", description="Transcribe audio files without a server.")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--format", choices=["text", "json", "srt", "vtt"], default="text")
    _decode_args(parser)
    args = parser.parse_args(argv)
    recognizer, bundle = _offline_recognizer(args.models_dir, args.model)
    options = _options(args)
    status = 0
    for path in args.files:
        try:
            audio = decode_audio(path.read_bytes(), sample_rate=bundle.manifest.sample_rate, max_seconds=24 * 3600)
            with tqdm(total=round(audio.duration, 1), unit="s", desc=path.name, disable=audio.duration < 60, file=sys.stderr) as bar:
                transcript = recognizer.transcribe(audio.samples, model=bundle.name, options=options,
                                                   progress=lambda share, total=audio.duration, bar=bar: bar.update(round(share * total, 1)))
        except (ASRError, OSError) as e:
            print(f"{path}: error: {e}", file=sys.stderr)
            status = 1
            continue
        if args.format == "json":
            print(json.dumps({"file": str(path), **transcript.to_json()}))
        elif args.format == "srt":
            print(to_srt(transcript))
        elif args.format == "vtt":
            print(to_vtt(transcript))
        else:
            print(transcript.text if len(args.files) == 1 else f"{path}: {transcript.text}")
    sys.exit(status)


def evaluate(argv: list[str] | None = None) -> None:
    """WER/CER of a bundle on a JSONL manifest of {"audio": path, "text": reference} lines."""
    from tqdm import tqdm

    from app.asr.audio import decode_audio
    from app.asr.metrics import error_rates
    from app.asr.text import normalize_text

    parser = argparse.ArgumentParser(prog="asr-eval", description=evaluate.__doc__)
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--show", type=int, default=0, help="print the first N hypotheses")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--stream", type=float, metavar="MS",
                        help="feed each file through the streaming engine in pieces of MS milliseconds (as /v1/stream does) and score the joined finals")
    _decode_args(parser)
    args = parser.parse_args(argv)
    recognizer, bundle = _offline_recognizer(args.models_dir, args.model)
    options = _options(args)

    def streamed(samples: np.ndarray) -> str:
        from app.asr.streaming import Stream, StreamOptions

        model = bundle.model(options.precision)
        stream = Stream(recognizer, bundle, model, options, StreamOptions(interim_results=False))
        piece = max(1, int(args.stream * bundle.manifest.sample_rate / 1000))
        results = [r for start in range(0, len(samples), piece) for r in stream.accept(samples[start : start + piece])]
        results += stream.finish()
        return " ".join(raw for r in results if r.kind == "final" and (raw := r.transcript.to_json()["raw_text"] if r.transcript else r.text))

    rows = [json.loads(line) for line in args.manifest.read_text().splitlines() if line.strip()][: args.limit]
    pairs = []
    decode_seconds = audio_seconds = 0.0
    for row in tqdm(rows, desc="eval", file=sys.stderr, mininterval=2):
        path = Path(row["audio"])
        path = path if path.is_absolute() else args.manifest.parent / path
        audio = decode_audio(path.read_bytes(), sample_rate=bundle.manifest.sample_rate, max_seconds=24 * 3600)
        if args.stream:
            hypothesis = streamed(audio.samples)
        else:
            transcript = recognizer.transcribe(audio.samples, model=bundle.name, options=options)
            # WER on the normalised words: punctuation, casing and written numbers never count (raw_text)
            hypothesis, decode_seconds = transcript.to_json()["raw_text"], decode_seconds + transcript.timings.get("decode", 0.0)
        audio_seconds += len(audio.samples) / bundle.manifest.sample_rate
        pairs.append((normalize_text(row["text"]), hypothesis))
    wer, cer = error_rates(pairs)
    for ref, hyp in pairs[: args.show]:
        print(f"REF: {ref}\nHYP: {hyp}\n")
    result = {"manifest": str(args.manifest), "model": bundle.name, "decoder": options.decoder or bundle.manifest.decoding.decoder,
              "utterances": len(pairs), "wer": round(wer, 2), "cer": round(cer, 2), **({"stream_ms": args.stream} if args.stream else {})}
    if not args.stream:  # decoder time (after the acoustic model), per second of audio: compares decoders and engines
        result["decode_ms_per_audio_second"] = round(1000 * decode_seconds / max(audio_seconds, 1e-9), 3)
    print(json.dumps(result) if args.json else f"{bundle.name} on {args.manifest.name} ({len(pairs)} utts, {result['decoder']}): WER {wer:.2f}%  CER {cer:.2f}%")
