"""`asr-bench` output: the targets checked, the compact table printed, the PNG plot."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def _get(data: dict[str, Any], *path: str | int) -> Any:
    for key in path:
        if isinstance(data, dict) and key in data:
            data = data[key]
        elif isinstance(data, list) and isinstance(key, int) and -len(data) <= key < len(data):
            data = data[key]
        else:
            return None
    return data


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each design target with the measured value; `met` is None when the section did not run."""
    cores = str(results["machine"]["cores"])
    w2v = _get(results, "acoustic", "wav2vec2", "threads", cores) or _get(results, "acoustic", "wav2vec2", "threads", "1") or {}
    comparison = {row["name"]: row for row in _get(results, "decoders", "comparison") or []}
    whisper_speedup = _get(results, "whisper", "speedup", "greedy")  # reported: no target
    rows = [
        ("wav2vec2 ORT fp32 speed-up over PyTorch eager (all cores)", w2v.get("speedup_fp32_vs_torch"), ">=", 1.5),
        ("wav2vec2 ORT int8 speed-up over PyTorch eager (all cores)", w2v.get("speedup_int8_vs_torch"), ">=", 2.5),
        ("Wav2Letter RTF on one core (ORT fp32)", _get(results, "acoustic", "wav2letter", "threads", "1", "ort_fp32", "rtf"), "<", 0.02),
        ("server overhead share of model time (5 s file)", _get(results, "overhead", "batching", "overhead_share"), "<", 0.10),
        ("batching on over off, the least over every concurrency", min((_get(results, "throughput", "batching_speedup") or {}).values(), default=None),
         ">=", 0.95),
        ("our beam16+lm faster than pyctcdecode by", _get(comparison, "beam16+lm", "ours_faster_by"), ">=", 5.0),
        ("... the least over every width, with and without LM", min((r["ours_faster_by"] for r in comparison.values()), default=None), ">=", 5.0),
        ("... our WER above pyctcdecode's there, the most (points)", max((r["ours_wer"] - r["pyctcdecode_wer"] for r in comparison.values()), default=None),
         "<", 0.01),
        ("real-time streams within 500 ms p95 partial latency", _get(results, "streaming", "websocket", "sustained_streams"), ">=", 64),
        ("Stream.accept per chunk over offline acoustic time", _get(results, "streaming", "accept", "accept_over_offline"), "<", 2.0),
        ("punctuation tagger time as a share of the acoustic model's", _get(results, "punctuation", "share_of_acoustic"), "<", 0.05),
        ("Whisper tiny.en time over Whisper-CTC's, greedy, 1 core", whisper_speedup, "", None),
    ]
    out = []
    for name, value, op, target in rows:
        met = None
        if value is not None and target is not None:
            met = bool(value >= target) if op == ">=" else bool(value < target)
        out.append({"name": name, "value": value, "op": op, "target": target, "met": met})
    return out


def _f(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def _ms(value: Any) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value * 1000:.0f} ms"


def table(results: dict[str, Any]) -> str:
    """Every figure and ratio, compactly, in the order of the sections."""
    m = results["machine"]
    lines = [f"asr-bench ({results['config']['mode']}) on {m['cpu']} x{m['cores']} cores, {m['date']} (load avg at start {m['load_average']})"]

    def section(title: str) -> None:
        lines.append("")
        lines.append(f"== {title}")

    acoustic = results.get("acoustic") or {}
    if acoustic:
        section("1. acoustic model: RTF (lower is better) and ORT speed-up over PyTorch eager")
        lines.append(f"{'model':<12}{'thr':>4}{'torch':>9}{'ort32':>9}{'int8':>9}{'fp32 x':>8}{'int8 x':>8}")
        for name in ("wav2letter", "wav2vec2"):
            block = acoustic.get(name)
            if not block:
                continue
            for n, row in block["threads"].items():
                lines.append(f"{name:<12}{n:>4}{_f(_get(row, 'torch_eager', 'rtf')):>9}{_f(_get(row, 'ort_fp32', 'rtf')):>9}"
                             f"{_f(_get(row, 'ort_int8', 'rtf')):>9}{_f(row.get('speedup_fp32_vs_torch')):>8}{_f(row.get('speedup_int8_vs_torch')):>8}")  # fmt: skip
            lines.append(f"  ({block['note']}; {block['audio_seconds']:.1f} s audio, median of {block['repeats']})")
        gpu = acoustic.get("gpu")
        if gpu and gpu.get("batches"):
            for batch, row in gpu["batches"].items():
                lines.append(f"  GPU wav2vec2 batch {batch}: fp32 {_ms(_get(row, 'fp32', 'seconds'))}, fp16 {_ms(_get(row, 'fp16', 'seconds'))}, "
                             f"fp16 x{_f(row.get('speedup_fp16_vs_fp32'))}")  # fmt: skip
        elif gpu:
            lines.append(f"  GPU: {gpu.get('skipped')}")
    overhead = results.get("overhead")
    if overhead:
        section("2. POST /v1/transcribe against the model in-process (same audio, greedy)")
        for name, o in overhead.items():
            inside = o.get("server_reported") or {}
            lines.append(f"{name:<12} model {_ms(o['model_seconds'])}, HTTP {_ms(o['http_seconds'])}, overhead {_ms(o['overhead_seconds'])} "
                         f"= {o['overhead_share'] * 100:.1f}% of model time; server's own timings: acoustic {_ms(inside.get('acoustic'))}, "
                         f"decode {_ms(inside.get('decode'))}, total {_ms(inside.get('total'))}")  # fmt: skip
        lines.append(f"  ({next(iter(overhead.values()))['audio_seconds']:.1f} s audio, median of {next(iter(overhead.values()))['repeats']})")
    throughput = results.get("throughput")
    if throughput:
        served = f"{throughput['model']}, " if throughput.get("model") else ""
        section(f"3. throughput, {served}{throughput['audio_seconds']:.1f} s requests (req/s; latency p50/p95)")
        names = list(throughput["runs"])
        lines.append(f"{'clients':>7}" + "".join(f"{n:>32}" for n in names) + f"{'gain':>7}")
        for i, clients in enumerate(throughput["levels"]):
            cells = []
            for n in names:
                r = throughput["runs"][n][i]
                busy = f" 429x{r['busy']}" if r["busy"] else ""
                cells.append(f"{r['requests_per_second']:.1f}/s {_ms(r['p50'])}/{_ms(r['p95'])}{busy}")
            gain = _get(throughput, "batching_speedup", str(clients))
            lines.append(f"{clients:>7}" + "".join(f"{c:>32}" for c in cells) + f"{_f(gain):>7}")
    decoders = results.get("decoders")
    if decoders:
        section(f"4. decoders on {decoders['audio_seconds']:.0f} s of emissions (ms per audio second; WER %)")
        theirs = {r["name"]: r for r in _get(decoders, "pyctcdecode", "runs") or []}
        lines.append(f"{'decoder':<22}{'ours':>9}{'WER':>7}{'pyctcdecode':>13}{'WER':>7}{'ours x':>8}")
        for run in decoders["ours"]:
            other = theirs.get(run["name"])
            faster = other["seconds"] / max(run["seconds"], 1e-9) if other else None
            lines.append(f"{run['name']:<22}{run['seconds_per_audio_second'] * 1000:>9.2f}{run['wer']:>7.1f}"
                         f"{(other['seconds_per_audio_second'] * 1000 if other else float('nan')):>13.2f}{(other['wer'] if other else float('nan')):>7.1f}{_f(faster):>8}")  # fmt: skip
        lines.append(f"  ({decoders['emissions']}; LM: {decoders['lm']})")
        runs = {r["name"]: r["seconds_per_audio_second"] for r in decoders["ours"]}
        rescored = next((v for k, v in runs.items() if "+txl" in k), None)
        model_rtf = _get(results, "acoustic", "wav2letter", "threads", "1", "ort_fp32", "rtf")
        if rescored is not None and "beam16+lm" in runs and model_rtf:
            cost = rescored - runs["beam16+lm"]
            lines.append(f"  Transformer-XL rescoring: {cost * 1000:.2f} ms per audio second = {cost / model_rtf:.2f}x the acoustic model's time (Wav2Letter, ORT fp32, 1 core)")
        if not _get(decoders, "pyctcdecode", "available"):
            lines.append(f"  pyctcdecode: {_get(decoders, 'pyctcdecode', 'reason')}")
    streaming = results.get("streaming")
    if streaming:
        section("5. streaming (160 ms chunks)")
        accept = streaming.get("accept") or {}
        if accept:
            lines.append(f"Stream.accept per chunk: mean {_ms(accept.get('mean'))}, median {_ms(accept['median'])}, p95 {_ms(accept['p95'])} "
                         f"({accept['share_of_real_time'] * 100:.1f}% of real time); finish {_ms(accept['finish_seconds'])}")  # fmt: skip
            if "accept_over_offline" in accept:
                graph = "cached streaming graph" if accept.get("cached_graph") else "receptive-field windows (no cached graph in the bundle)"
                lines.append(f"  over the offline acoustic model's time for the same audio ({_ms(accept['offline_acoustic_per_chunk'])} per chunk): "
                             f"{_f(accept['accept_over_offline'])}x ({graph}; mean over chunks, greedy finals)")  # fmt: skip
            if "without_whole_finals_over_offline" in accept:
                lines.append(f"  with finals from the streamed emissions instead of a pass over each utterance: {_f(accept['without_whole_finals_over_offline'])}x")
            if "windows_over_offline" in accept:
                lines.append(f"  the same stream recomputing each receptive field: mean {_ms(accept.get('windows_mean'))}, {_f(accept['windows_over_offline'])}x")
            if "look_ahead_seconds" in accept:
                lines.append(f"  model look-ahead {_ms(accept['look_ahead_seconds'])} (plus up to one chunk of waiting)")
        ws = streaming.get("websocket") or {}
        for level in ws.get("levels", []):
            p, e = level["partial_latency"], level["eof_to_last_final"]
            speech = level.get("speech_end_to_final") or {}
            refused = f", refused {level['refused']}" if level.get("refused") else ""
            lines.append(f"{level['streams']:>3} streams: partial p50 {_ms(p['p50'])} p95 {_ms(p['p95'])} (n={p['count']}), "
                         f"speech end->final p50 {_ms(speech.get('p50'))} p95 {_ms(speech.get('p95'))}, eof->final p50 {_ms(e['p50'])}, "
                         f"errors {level['errors']}{refused}{'' if level['within_limit'] else '  <- over the limit'}")  # fmt: skip
        if ws:
            lines.append(f"sustained real-time streams (p95 partial <= {ws['limit_seconds'] * 1000:.0f} ms): {ws['sustained_streams']}")
    memory = results.get("memory")
    if memory:
        section("6. server memory (VmRSS, VmHWM)")
        lines.append(f"at start {_f(memory['start_peak_mib'], 4)} MiB; after {memory['requests']} requests {_f(memory['after_peak_mib'], 4)} MiB "
                     f"(+{_f(memory['growth_mib'], 3)} MiB, {memory['failed']} failed)")  # fmt: skip
        if memory.get("checkpoint_rss_mib"):
            lines.append(f"resident after request {memory['checkpoint']}: {_f(memory['checkpoint_rss_mib'], 4)} MiB; after request {memory['requests']}: "
                         f"{_f(memory['after_rss_mib'], 4)} MiB ({_f(memory['rss_end_over_checkpoint'])}x; mixed lengths up to "
                         f"{_f(memory.get('max_clip_seconds'), 3)} s, formats, models and options)")  # fmt: skip
    punctuation = results.get("punctuation")
    if punctuation:
        section("7. punctuation tagger against the acoustic model (ms per audio second, one thread)")
        if "skipped" in punctuation:
            lines.append(f"skipped: {punctuation['skipped']}")
        else:
            lines.append(f"{punctuation['bundle']} ({punctuation['precision']}, {punctuation['words']} words): {_f(punctuation['punctuation_ms_per_audio_second'])} ms; "
                         f"acoustic {_f(punctuation['acoustic_ms_per_audio_second'])} ms; share {_f(punctuation['share_of_acoustic'], 3)}")  # fmt: skip
    whisper = results.get("whisper")
    if whisper:
        section("8. Whisper-CTC against Whisper tiny.en (faster-whisper int8, beam 5), one core each")
        if "skipped" in whisper:
            lines.append(f"skipped: {whisper['skipped']}")
        else:
            labels = {"emissions": "whisper-ctc emissions", "greedy": "whisper-ctc greedy", "beam": "whisper-ctc beam"}
            lines.append(f"{'engine':<24}{'RTF':>9}{'WER':>7}{'whisper x':>11}")
            for name, row in whisper["engines"].items():
                label = labels.get(name, "whisper tiny.en beam5")
                wer = f"{row['wer']:.1f}" if row.get("wer") is not None else "-"
                lines.append(f"{label:<24}{_f(row['rtf']):>9}{wer:>7}{_f(whisper['speedup'].get(name, 1.0)):>11}")
            seconds, rounds = whisper["audio_seconds"], whisper["rounds"]
            lines.append(f"  ({whisper['note']}; {whisper['audio']}, {seconds:.1f} s; median of {rounds} rounds, A B B A)")  # fmt: skip
    section("targets")
    for t in results.get("targets", []):
        mark = {True: "met", False: "MISSED", None: "-"}[t["met"]] if t["target"] is not None else "report"
        goal = f"{t['op']} {t['target']}" if t["target"] is not None else ""
        lines.append(f"{t['name']:<56}{_f(t['value']):>9} {goal:<8} {mark}")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> Path | None:
    """Throughput and latency against concurrency (with and without batching), and streaming latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    throughput = results.get("throughput")
    streaming = _get(results, "streaming", "websocket", "levels")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    if throughput:
        for (name, runs), color in zip(throughput["runs"].items(), ("tab:blue", "tab:orange", "tab:green"), strict=False):
            clients, label = [r["clients"] for r in runs], name.replace("_", " ")
            axes[0].plot(clients, [r["requests_per_second"] for r in runs], marker="o", color=color, label=label)
            axes[1].plot(clients, [r["p50"] * 1000 for r in runs], marker="o", color=color, label=f"{label} p50")
            axes[1].plot(clients, [r["p95"] * 1000 for r in runs], marker="x", color=color, linestyle="--", label=f"{label} p95")
    axes[0].set(title=f"throughput ({_get(results, 'throughput', 'audio_seconds') or 0:g} s requests)", xlabel="concurrent clients", ylabel="requests / s")
    axes[1].set(title="request latency", xlabel="concurrent clients", ylabel="ms")
    if streaming:
        n = [lv["streams"] for lv in streaming]
        axes[2].plot(n, [lv["partial_latency"]["p50"] * 1000 for lv in streaming], marker="o", label="partial p50")
        axes[2].plot(n, [lv["partial_latency"]["p95"] * 1000 for lv in streaming], marker="x", linestyle="--", label="partial p95")
        axes[2].axhline(500, color="red", linewidth=0.8, label="500 ms")
    axes[2].set(title="streaming partial latency", xlabel="concurrent real-time streams", ylabel="ms")
    from matplotlib.ticker import FixedLocator, FuncFormatter

    for ax, levels in zip(axes, (_get(results, "throughput", "levels"), _get(results, "throughput", "levels"), [lv["streams"] for lv in streaming or []]), strict=True):
        ax.set_xscale("log", base=2)
        if levels:
            ax.xaxis.set_major_locator(FixedLocator(levels))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        if ax is axes[0]:
            ax.set_ylim(bottom=0)
        elif ax.has_data():
            ax.set_yscale("log")  # latencies span milliseconds to seconds
        if not ax.has_data():
            ax.text(0.5, 0.5, "not measured in this run", ha="center", va="center", transform=ax.transAxes, color="gray")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    m = results["machine"]
    fig.suptitle(f"asr-bench {results['config']['mode']}: {m['cpu']} x{m['cores']}, {m['date']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
