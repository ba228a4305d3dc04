"""`asr-bench`: every performance figure of the project measured side by side in one run.

    asr-bench                      # a few minutes: every section
    asr-bench --quick              # about a minute once the models are cached: fewer rounds, shorter loops
    asr-bench --sections acoustic,decoders --out /tmp/bench

Absolute times on a shared machine are noisy; the ratios (ONNX Runtime against PyTorch,
the server against the model, batching against none, ours against pyctcdecode) are
measured in the same run on the same input and hold. Results go to `<out>/bench.json` and
`<out>/bench.png`; the table of every figure is printed. docs/benchmarks.md says what each
number means.

Sections: 1 `acoustic` (ORT fp32/int8 against PyTorch eager; fp16 on a GPU), 2 `overhead`
(`POST /v1/transcribe` against the model in-process), 3 `throughput` (1-64 clients, dynamic
batching on and off), 4 `decoders` (greedy, beam, LM, rescoring; pyctcdecode), 5 `streaming`
(per-chunk time, concurrent real-time WebSocket streams), 6 `memory` (server VmHWM), 7 `punctuation`
(the punctuation tagger's time per audio second against the acoustic model's), 8 `whisper` (the
Whisper-CTC bundle against Whisper tiny.en under faster-whisper, one core each, on real clips).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench.inputs import BuiltBundle

ROOT = Path(__file__).resolve().parent.parent  # the repository
SECTIONS = ("acoustic", "overhead", "throughput", "decoders", "streaming", "memory", "punctuation", "whisper")
REAL_CLIPS = ROOT.parent / "shared" / "data" / "real_dev_lj" / "manifest.jsonl"  # section 8's real speech (LJ Speech)


@dataclass(frozen=True)
class BenchConfig:
    """How much of everything to measure; `preset()` gives the three sizes."""

    mode: str = "full"
    out: Path = Path("bench-results")
    models_dir: Path = ROOT / "models" / "bundles"
    corpus_dir: Path | None = ROOT / "data" / "corpus40"
    sections: tuple[str, ...] = SECTIONS
    tiny_models: bool = False  # test-sized random models instead of the default sizes
    threads: tuple[int, ...] = (1, os.cpu_count() or 1)
    audio_seconds: float = 5.0  # sections 1 and 2
    repeats: int = 5  # section 1 rounds; section 2 uses 2x
    throughput_audio_seconds: float = 2.0
    throughput_levels: tuple[int, ...] = (1, 4, 16, 64)
    throughput_seconds: float = 8.0  # per level and server
    throughput_model: str | None = None  # the bundle section 3 sends requests to (default: the Wav2Letter bundle)
    stream_model: str | None = None  # the bundle section 5 streams to (default: the Wav2Letter bundle; the README's figures: whisper-ctc-base)
    max_requests: int = 5000  # per level, a bound on top of the time
    decoder_sentences: int = 25
    beam_widths: tuple[int, ...] = (1, 16, 64, 256)
    lm_widths: tuple[int, ...] = (16, 64, 256)
    lm_lines: int = 20000  # lines of the corpus LM text for a benchmark-built n-gram
    stream_levels: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    stream_seconds: float = 8.0
    memory_requests: int = 1000
    memory_clip_seconds: float = 30.0  # the longest clip of the memory section's mix
    whisper_manifest: Path | None = REAL_CLIPS  # section 8's clips (speech-like audio when missing)
    whisper_clips: int = 8
    whisper_rounds: int = 4  # passes of every engine over every clip, in A B B A order
    pyctcdecode_python: Path | None = None
    gpu: bool = True

    def __post_init__(self) -> None:
        unknown = set(self.sections) - set(SECTIONS)
        if unknown:
            raise ValueError(f"unknown section(s) {sorted(unknown)}; choose from {', '.join(SECTIONS)}")


def preset(mode: str, **overrides: Any) -> BenchConfig:
    """`full` (the default run), `quick` (about a minute with cached models) or `tiny` (tests: tiny models, < 1 minute cold)."""
    cores = os.cpu_count() or 1
    if mode == "full":
        config = BenchConfig()
    elif mode == "quick":
        config = BenchConfig(mode="quick", repeats=1, throughput_seconds=2.0, decoder_sentences=8, lm_widths=(16,), stream_levels=(1, 4, 16, 64),
                             stream_seconds=3.0, memory_requests=100, memory_clip_seconds=10.0, whisper_rounds=2)  # fmt: skip
    elif mode == "tiny":
        config = BenchConfig(mode="tiny", tiny_models=True, threads=(1,), audio_seconds=2.0, repeats=1, throughput_audio_seconds=1.0,
                             throughput_levels=(1, 4), throughput_seconds=0.6, decoder_sentences=3, beam_widths=(1, 16), lm_widths=(16,),
                             lm_lines=2000, stream_levels=(1, 2), stream_seconds=1.0, memory_requests=10, memory_clip_seconds=2.0, gpu=False,
                             whisper_clips=1, whisper_rounds=2)  # fmt: skip
    else:
        raise ValueError(f"unknown mode {mode!r}; use full, quick or tiny")
    if cores == 1:
        config = replace(config, threads=(1,))
    return replace(config, **overrides)


def machine() -> dict[str, Any]:
    import numpy
    import onnxruntime

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"python": platform.python_version(), "numpy": numpy.__version__, "onnxruntime": onnxruntime.__version__}
    try:
        import torch

        versions["torch"] = torch.__version__
    except ImportError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count() or 1, "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()), "platform": platform.platform(), "versions": versions,
            "ort_providers": onnxruntime.get_available_providers()}  # fmt: skip


def _say(message: str) -> None:
    print(f"[asr-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Context:
    """What the sections share: the bundles, the directory the server serves, the audio."""

    config: BenchConfig
    cache: Path
    wav2letter: BuiltBundle
    serve_dir: Path


def prepare(config: BenchConfig) -> Context:
    from bench.inputs import wav2letter_bundle

    cache = config.out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    w2l = wav2letter_bundle(config.models_dir, cache, tiny=config.tiny_models)
    if w2l.trained:
        serve_dir = w2l.directory.parent
    else:
        serve_dir = cache / ("serve-tiny" if config.tiny_models else "serve")
        serve_dir.mkdir(exist_ok=True)
        link = serve_dir / w2l.directory.name
        if link.is_symlink() and not link.exists():  # the output directory was moved
            link.unlink()
        if not link.exists():
            link.symlink_to(w2l.directory.resolve(), target_is_directory=True)
    return Context(config, cache, w2l, serve_dir)


def run_acoustic(ctx: Context) -> dict[str, Any]:
    from bench.acoustic import cuda_available, measure_engines, measure_gpu
    from bench.inputs import speechlike, torch_wav2letter, torch_wav2vec2, wav2vec2_bundle

    c = ctx.config
    samples = speechlike(c.audio_seconds, seed=1)
    threads = list(dict.fromkeys(c.threads))
    _say(f"acoustic: {ctx.wav2letter.note}")
    out: dict[str, Any] = {"wav2letter": measure_engines(ctx.wav2letter, torch_wav2letter(ctx.wav2letter), samples, threads=threads, repeats=c.repeats)}
    _say("acoustic: wav2vec2 (exported once, then cached)")
    w2v = wav2vec2_bundle(ctx.cache, tiny=c.tiny_models, fp16=False)
    out["wav2vec2"] = measure_engines(w2v, torch_wav2vec2(w2v), samples, threads=threads, repeats=c.repeats)
    if c.gpu and cuda_available():
        _say("acoustic: CUDA execution provider found: wav2vec2 fp16 at batch 1 and 32")
        fp16 = wav2vec2_bundle(ctx.cache, tiny=c.tiny_models, fp16=True)
        out["gpu"] = measure_gpu(fp16, samples, repeats=max(c.repeats, 3))
    else:
        out["gpu"] = {"skipped": "no CUDAExecutionProvider in onnxruntime (install the gpu extra on a GPU host)"}
    return out


def run_decoders(ctx: Context) -> dict[str, Any]:
    from bench.decoders import measure_decoders, pyctcdecode_python
    from bench.inputs import ngram_files, reference_sentences, synthetic_emissions, txl_bundle

    c = ctx.config
    corpus = c.corpus_dir / "lm_train.txt" if c.corpus_dir else None
    arpa, lexicon, lm_note = ngram_files(ctx.wav2letter, corpus, ctx.cache, max_lines=c.lm_lines)
    txl = txl_bundle(c.models_dir, ctx.cache, tiny=c.tiny_models)
    references, source = reference_sentences(c.corpus_dir, c.decoder_sentences)
    emissions = synthetic_emissions(references, source=source)
    _say(f"decoders: {emissions.seconds:.0f} s of emissions, widths {c.beam_widths}, LM widths {c.lm_widths}")
    python = pyctcdecode_python(c.pyctcdecode_python)
    return measure_decoders(emissions, arpa=arpa, lexicon_path=lexicon, lm_note=lm_note, txl=txl, widths=c.beam_widths, lm_widths=c.lm_widths,
                            threads=1, python=python, rounds=2 if c.repeats > 1 else 1)  # fmt: skip


def run_punctuation(ctx: Context) -> dict[str, Any]:
    from bench.punctuation import measure_punctuation

    c = ctx.config
    _say("punctuation: the tagger against the acoustic model, per second of audio")
    return measure_punctuation(c.models_dir, ctx.wav2letter, seconds=max(c.audio_seconds, 10.0), repeats=c.repeats)


def run_whisper(ctx: Context) -> dict[str, Any]:
    from bench.inputs import whisper_ctc_bundle
    from bench.whisper import load_clips, measure_whisper, reference_missing

    c = ctx.config
    missing = reference_missing()  # before exporting a stand-in that nothing would be compared with
    if missing is not None:
        return {"skipped": missing}
    _say("whisper: the Whisper-CTC bundle (an untrained export is made once, then cached)")
    try:
        bundle = whisper_ctc_bundle(c.models_dir, ctx.cache, tiny=c.tiny_models)
    except (FileNotFoundError, ValueError) as e:
        return {"skipped": f"no whisper_ctc bundle under {c.models_dir} and no Whisper base to export a stand-in: {e}"}
    clips = load_clips(c.whisper_manifest, c.whisper_clips, fallback_seconds=c.audio_seconds)
    _say(f"whisper: {bundle.note} against Whisper tiny.en on {clips.source} ({clips.seconds:.1f} s)")
    return measure_whisper(bundle, clips, rounds=c.whisper_rounds)


def run_servers(ctx: Context, results: dict[str, Any]) -> None:
    """Sections 2, 3, 5 and 6: they share the server processes."""
    from bench.inputs import corpus_speech, speechlike
    from bench.server import (
        local_recognizer,
        measure_accept,
        measure_memory,
        measure_overhead,
        measure_streams,
        measure_throughput,
        run_server,
    )

    c = ctx.config
    model = ctx.wav2letter.manifest.name
    rate = ctx.wav2letter.manifest.sample_rate
    cores = os.cpu_count() or 1
    logs = ctx.cache / "logs"
    wanted = set(c.sections)
    recognizer = local_recognizer(ctx.serve_dir, model=model, threads=cores) if wanted & {"overhead", "streaming"} else None
    if wanted & {"overhead", "throughput"}:
        with run_server(ctx.serve_dir, model=model, log_dir=logs) as batched, \
                run_server(ctx.serve_dir, model=model, log_dir=logs, batch_max_size=1) as unbatched:  # fmt: skip
            servers = {"batching": batched, "no_batching": unbatched}  # batching on is the default setting
            if "overhead" in wanted:
                _say("overhead: POST /v1/transcribe against the model in-process")
                assert recognizer is not None
                samples = speechlike(c.audio_seconds, seed=1)
                results["overhead"] = {name: measure_overhead(s, recognizer, model=model, samples=samples, rate=rate, repeats=max(4, 2 * c.repeats))
                                       for name, s in servers.items()}  # fmt: skip
            if "throughput" in wanted:
                _say(f"throughput: {c.throughput_levels} clients, {c.throughput_seconds:g} s per level and server")
                results["throughput"] = measure_throughput(servers, model=c.throughput_model or model, samples=speechlike(c.throughput_audio_seconds, seed=2),
                                                           rate=rate, levels=c.throughput_levels, seconds=c.throughput_seconds, max_requests=c.max_requests)  # fmt: skip
    if "streaming" in wanted:
        assert recognizer is not None
        _say(f"streaming: {c.stream_levels} real-time streams of {c.stream_seconds:g} s")
        speech = corpus_speech(c.corpus_dir, max(c.stream_seconds, 10.0), rate)
        audio, source = speech if speech is not None else (speechlike(max(c.stream_seconds, 10.0), seed=3), "synthetic speech-like audio")
        streamed = c.stream_model or model
        stream_recognizer = recognizer if streamed == model else local_recognizer(ctx.serve_dir, model=streamed, threads=cores)
        with run_server(ctx.serve_dir, model=streamed, log_dir=logs) as server:
            results["streaming"] = {
                "model": streamed,
                "audio": source,
                "accept": measure_accept(stream_recognizer, streamed, audio, rate),
                "websocket": measure_streams(server, stream_recognizer, model=streamed, samples=audio[: int(c.stream_seconds * rate)], rate=rate,
                                             levels=c.stream_levels),
            }  # fmt: skip
    if "memory" in wanted:
        _say(f"memory: a fresh server, {c.memory_requests} mixed requests (clips up to {c.memory_clip_seconds:g} s)")
        with run_server(ctx.serve_dir, model=model, log_dir=logs) as server:
            results["memory"] = measure_memory(server, requests=c.memory_requests, max_seconds=c.memory_clip_seconds)
            results["memory"]["served"] = str(ctx.serve_dir)


def run(config: BenchConfig) -> dict[str, Any]:
    """Measure the chosen sections; write `bench.json` and `bench.png` under `config.out`; return the results."""
    from bench.report import plot, table, targets

    started = time.perf_counter()
    config.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": machine(), "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}}
    ctx = prepare(config)
    results["models"] = {"wav2letter": {"directory": str(ctx.wav2letter.directory), "trained": ctx.wav2letter.trained, "note": ctx.wav2letter.note},
                         "served": str(ctx.serve_dir)}  # fmt: skip
    if "acoustic" in config.sections:
        results["acoustic"] = run_acoustic(ctx)
    if "decoders" in config.sections:
        results["decoders"] = run_decoders(ctx)
    if set(config.sections) & {"overhead", "throughput", "streaming", "memory"}:
        run_servers(ctx, results)
    if "punctuation" in config.sections:
        results["punctuation"] = run_punctuation(ctx)
    if "whisper" in config.sections:
        results["whisper"] = run_whisper(ctx)
    results["targets"] = targets(results)
    results["seconds"] = time.perf_counter() - started
    path = config.out / "bench.json"
    path.write_text(json.dumps(_finite(results), indent=2, default=_json_default))
    results["png"] = str(plot(results, config.out / "bench.png"))
    results["table"] = table(results)
    (config.out / "bench.txt").write_text(results["table"] + "\n")
    return results


def _finite(value: Any) -> Any:
    """NaN (a percentile of nothing) as null, so that `bench.json` is strict JSON."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="asr-bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="results directory (default bench-results/); models are cached in OUT/cache")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models" / "bundles", help="where to look for the default Wav2Letter bundle")
    parser.add_argument("--quick", action="store_true", help="a smoke run of about a minute (after the first run has cached the models)")
    parser.add_argument("--tiny", action="store_true", help="tiny random models and a few iterations (what the tests run)")
    parser.add_argument("--sections", help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--pyctcdecode-python", type=Path, help="interpreter of a virtualenv with pyctcdecode (default: .bench-venv/bin/python)")
    parser.add_argument("--corpus-dir", type=Path, help="corpus with lm_train.txt and lm_heldout.txt (default data/corpus40)")
    parser.add_argument("--memory-requests", type=int, help="requests of the memory section (default 1000; its figure compares request N/6 with N)")
    parser.add_argument("--throughput-model", help="bundle of the throughput section, served from --models-dir (default: the Wav2Letter bundle)")
    parser.add_argument("--stream-model", help="bundle of the streaming section, served from --models-dir (default: the Wav2Letter bundle)")
    parser.add_argument("--stream-levels", help="comma-separated stream counts of the streaming section (default 1,2,4,8,16,32,64)")
    parser.add_argument("--memory-clip-seconds", type=float, help="the longest clip of the memory section's mix (default 30)")
    parser.add_argument("--whisper-manifest", type=Path, help=f"clips of the whisper section (default {REAL_CLIPS})")
    parser.add_argument("--whisper-clips", type=int, help="how many clips the whisper section takes (default 8)")
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {"out": args.out, "models_dir": args.models_dir, "pyctcdecode_python": args.pyctcdecode_python}
    if args.sections:
        overrides["sections"] = tuple(s.strip() for s in args.sections.split(",") if s.strip())
    if args.corpus_dir:
        overrides["corpus_dir"] = args.corpus_dir
    if args.memory_requests:
        overrides["memory_requests"] = args.memory_requests
    if args.memory_clip_seconds:
        overrides["memory_clip_seconds"] = args.memory_clip_seconds
    if args.throughput_model:
        overrides["throughput_model"] = args.throughput_model
    if args.stream_model:
        overrides["stream_model"] = args.stream_model
    if args.stream_levels:
        overrides["stream_levels"] = tuple(int(n) for n in args.stream_levels.split(","))
    if args.whisper_manifest:
        overrides["whisper_manifest"] = args.whisper_manifest
    if args.whisper_clips:
        overrides["whisper_clips"] = args.whisper_clips
    try:
        config = preset("tiny" if args.tiny else "quick" if args.quick else "full", **overrides)
    except ValueError as e:
        parser.error(str(e))
    results = run(config)
    print(results["table"])
    print(f"\nwrote {config.out / 'bench.json'} and {results['png']} in {results['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
