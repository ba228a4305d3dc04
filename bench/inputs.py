"""What `asr-bench` measures on: the model bundles (found or built and cached), audio, an
n-gram LM, a Transformer-XL bundle, and synthetic CTC emissions with references.

Random weights have the compute of trained ones, so when no trained bundle exists the
benchmark builds one of the same architecture and size. Everything built is cached under
`<out>/cache/` keyed by its size, so a rerun starts measuring at once.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.asr.manifest import MANIFEST_NAME, Manifest
from app.asr.numerics import log_softmax
from app.asr.tokens import TokenTable, asg_letters, ctc_letters
from export.quantize import quiet_root_logger

WAV2VEC2_LETTERS = "ETAOINSHRDLUCMWFGYPBVKXJQZ'"
WAV2VEC2_VOCAB = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, **{c: i + 5 for i, c in enumerate(WAV2VEC2_LETTERS)}}
TINY_WAV2VEC2 = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, "conv_dim": (32,) * 7,
                 "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4}  # fmt: skip
SYNTHETIC_SENTENCES = ("the cat sat on the mat", "a dog ran in the park", "she said hello to the old man", "the quick brown fox jumps over the lazy dog",
                       "we will meet again in the morning", "it was a cold and dark night", "he opened the door and walked in",
                       "there is no place like home", "they sold their house last year", "my brother reads a book every week")  # fmt: skip


@dataclass(frozen=True)
class BuiltBundle:
    """A bundle directory and how it came to be: `trained` is False for random stand-ins."""

    directory: Path
    manifest: Manifest
    trained: bool
    note: str


# --- audio ------------------------------------------------------------------------------------
def speechlike(seconds: float, rate: int = 16000, *, seed: int = 0) -> np.ndarray:
    """Harmonic bursts with pauses `[N]` float32: varied enough that random models emit varied tokens."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) * rng.uniform(0.2, 1.0) / k for k in range(1, 10))
    envelope = (np.sin(2 * np.pi * 2.1 * t) > -0.3).astype(np.float64) * (0.5 + 0.5 * np.sin(2 * np.pi * 5.3 * t) ** 2)
    wave = 0.3 * voiced * envelope + 0.01 * rng.standard_normal(n)
    return (wave / np.abs(wave).max() * 0.8).astype(np.float32)


def corpus_speech(corpus_dir: Path | None, seconds: float, rate: int = 16000) -> tuple[np.ndarray, str] | None:
    """Clips of `corpus_dir/dev.jsonl` joined with 0.3 s pauses up to `seconds`, or None without a corpus.

    Real speech matters where the model's output does: a trained model's streaming partials."""
    manifest = corpus_dir / "dev.jsonl" if corpus_dir is not None else None
    if manifest is None or not manifest.is_file():
        return None
    from app.asr.audio import decode_audio

    pieces, total = [], 0
    for line in manifest.read_text(encoding="utf-8").splitlines():
        if total >= seconds * rate:
            break
        try:
            audio = decode_audio(Path(json.loads(line)["audio"]).read_bytes(), sample_rate=rate, max_seconds=60.0)
        except Exception:  # noqa: BLE001 - a missing or unreadable clip is skipped
            continue
        pieces += [audio.samples.astype(np.float32), np.zeros(int(0.3 * rate), np.float32)]
        total += len(pieces[-2]) + len(pieces[-1])
    if not pieces:
        return None
    return np.concatenate(pieces)[: int(seconds * rate)], f"clips of {manifest}"


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    import io

    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


# --- acoustic bundles -------------------------------------------------------------------------
def find_bundle(models_dir: Path, architecture: str) -> BuiltBundle | None:
    """The first acoustic bundle of `architecture` under `models_dir` (sorted by directory name)."""
    if not models_dir.is_dir():
        return None
    for directory in sorted(p for p in models_dir.iterdir() if (p / MANIFEST_NAME).is_file()):
        try:
            manifest = Manifest.load(directory)
        except Exception:  # noqa: BLE001 - a broken bundle is the server's concern; skip it here
            continue
        if manifest.kind == "acoustic" and manifest.architecture == architecture:
            return BuiltBundle(directory, manifest, True, f"{directory}")
    return None


def wav2letter_bundle(models_dir: Path, cache: Path, *, tiny: bool) -> BuiltBundle:
    """The default Wav2Letter bundle, or a random one of the project's default size (ASG, 30 tokens)."""
    found = None if tiny else find_bundle(models_dir, "wav2letter")
    if found is not None:
        return found
    label = "tiny" if tiny else "small30"
    out = cache / f"wav2letter-{label}"
    note = f"random Wav2LetterConfig.{'small(30, channels=32, depth=2)' if tiny else 'small(30)'} (no wav2letter bundle in {models_dir})"
    if not (out / MANIFEST_NAME).is_file():
        _export_random_wav2letter(out, tiny=tiny)
    return BuiltBundle(out, Manifest.load(out), False, note)


def _export_random_wav2letter(out: Path, *, tiny: bool) -> None:
    import torch

    from export.wav2letter import export_wav2letter
    from models.asg import ASGLoss
    from models.wav2letter import Wav2Letter, Wav2LetterConfig

    torch.manual_seed(0)
    table = asg_letters()
    config = Wav2LetterConfig.small(len(table), channels=32, depth=2, hidden=64) if tiny else Wav2LetterConfig.small(len(table))
    model = Wav2Letter(config).eval()
    with torch.no_grad():  # BatchNorm statistics that make random outputs vary with the input, as a trained model's do
        model.input_norm.running_mean.fill_(-6.0)
        model.input_norm.running_var.fill_(9.0)
        model.head.weight.mul_(5.0)
    loss = ASGLoss(len(table))
    with torch.no_grad():
        loss.transitions.normal_(0, 0.5)
    with tempfile.TemporaryDirectory() as work:
        checkpoint = Path(work) / "w2l.pt"
        torch.save({"architecture": "wav2letter", "criterion": "asg", "config": config.to_json(), "tokens": table.to_json(),
                    "model": model.state_dict(), "transitions": loss.transitions.detach().clone()}, checkpoint)  # fmt: skip
        export_with_int8(lambda int8: export_wav2letter(checkpoint, out, name="bench-wav2letter", int8=int8, log=False), out,
                         exclude_first=1, op_types=("Conv", "MatMul", "Gemm"))  # as export_wav2letter quantizes


WHISPER_CTC_BUNDLE = "whisper-ctc-base"  # the default Whisper-CTC bundle's directory under the models directory


def whisper_ctc_bundle(models_dir: Path, cache: Path, *, tiny: bool) -> BuiltBundle:
    """The default Whisper-CTC bundle (`models_dir/whisper-ctc-base`, else the first `whisper_ctc`
    bundle there), or an untrained export of Whisper base's encoder: a random CTC head on the
    pretrained encoder, the same compute. `tiny`: a random 1 x 64 model (tests).

    Raises `FileNotFoundError` when a stand-in is needed and Whisper base's weights are not installed."""
    if not tiny:
        found = None
        preferred = models_dir / WHISPER_CTC_BUNDLE
        if (preferred / MANIFEST_NAME).is_file():
            manifest = Manifest.load(preferred)
            if manifest.kind == "acoustic" and manifest.architecture == "whisper_ctc":
                found = BuiltBundle(preferred, manifest, True, str(preferred))
        found = found or find_bundle(models_dir, "whisper_ctc")
        if found is not None:
            trained = found.manifest.source.get("kind") != "ctranslate2"  # an export of model.bin has an untrained head
            note = f"{found.directory} ({'trained' if trained else 'untrained head: same compute'})"
            return BuiltBundle(found.directory, found.manifest, trained, note)
    out = cache / ("whisper-ctc-tiny" if tiny else "whisper-ctc-base-untrained")
    if tiny:
        note = "random WhisperCTCConfig(d_model=64, n_heads=2, n_layers=1) (tiny test size)"
    else:
        note = f"untrained stand-in: same compute (Whisper base's encoder, random CTC head; no whisper_ctc bundle in {models_dir})"
    if not (out / MANIFEST_NAME).is_file():
        _fresh(out)
        if tiny:
            import torch

            from export.whisper_ctc import write_bundle
            from models.whisper_ctc import WhisperCTC, WhisperCTCConfig

            torch.manual_seed(0)
            model = WhisperCTC(WhisperCTCConfig(d_model=64, n_heads=2, n_layers=1))
            write_bundle(model, out, name="bench-whisper-ctc", description={"kind": "random"}, log=False)
        else:
            from export.whisper_ctc import export_whisper_ctc
            from models.whisper_weights import model_dir

            with quiet_root_logger():
                export_whisper_ctc(model_dir("base") / "model.bin", out, name="bench-whisper-ctc", log=False)
    return BuiltBundle(out, Manifest.load(out), False, note)


def wav2vec2_bundle(cache: Path, *, tiny: bool, fp16: bool) -> BuiltBundle:
    """A random wav2vec 2.0 bundle: `Wav2Vec2Config()` (base: 12 x 768) with a 32-token CTC head."""
    label = "tiny" if tiny else "base"
    out = cache / f"wav2vec2-{label}{'-fp16' if fp16 else ''}"
    if not (out / MANIFEST_NAME).is_file():
        with tempfile.TemporaryDirectory() as work:
            source = write_hf_wav2vec2(Path(work) / "hf", tiny=tiny)
            from export.wav2vec2 import export_wav2vec2_hf

            export_with_int8(lambda int8: export_wav2vec2_hf(source, out, name="bench-wav2vec2", int8=int8, fp16=fp16, log=False), out,
                             exclude_first=0, op_types=("MatMul", "Gemm"))  # as export_wav2vec2_hf quantizes
            shutil.copytree(source, out / "hf")  # kept for the PyTorch side of the comparison
    note = "random Wav2Vec2ForCTC(Wav2Vec2Config(vocab_size=32))" + (" (tiny test size)" if tiny else " (base size: 12 layers x 768)")
    return BuiltBundle(out, Manifest.load(out), False, note)


def export_with_int8(export: Callable[[bool], Manifest], out: Path, *, exclude_first: int, op_types: tuple[str, ...]) -> Manifest:
    """Run the project's exporter with int8; if random weights fail its int8 agreement gate, export
    fp32 and quantize exactly as the exporter does, recording the agreement ungated (the graph's
    speed is what the benchmark needs; a random model's near ties flip more often than a trained one's)."""
    from export.verify import ParityError

    _fresh(out)
    try:
        with quiet_root_logger():
            return export(True)
    except ParityError as e:
        gate = str(e)
    _fresh(out)
    manifest = export(False)
    from dataclasses import replace

    from export.onnx import finish_bundle
    from export.quantize import quantize_int8
    from export.verify import check_quantized, test_inputs

    with quiet_root_logger():
        quantize_int8(out / "model.onnx", out / "model.int8.onnx", exclude_first=exclude_first, op_types=op_types)
    report = check_quantized(out / "model.onnx", out / "model.int8.onnx", test_inputs([16000, 32000], [1]), max_changed=1.0)
    parity = {**manifest.parity, "int8": {**report.to_json(), "gated": False, "note": f"random weights failed the exporter's gate: {gate}"}}
    files = {p: e.path for p, e in manifest.files.items()} | {"int8": "model.int8.onnx"}
    return finish_bundle(out, replace(manifest, parity=parity), onnx_files=files, side_files=tuple(manifest.side_files))


def write_hf_wav2vec2(directory: Path, *, tiny: bool) -> Path:
    """A `save_pretrained` directory: random Wav2Vec2ForCTC, tokenizer and feature extractor."""
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    config = Wav2Vec2Config(vocab_size=len(WAV2VEC2_VOCAB), pad_token_id=0, **(TINY_WAV2VEC2 if tiny else {}))
    model = Wav2Vec2ForCTC(config).eval()
    with torch.no_grad():  # confident, varied outputs as a trained model's (a random head is nearly flat)
        model.lm_head.weight.normal_(0.0, 1.0)
        model.lm_head.bias[4] += 8.0
    model.save_pretrained(directory)
    (directory / "vocab.json").write_text(json.dumps(WAV2VEC2_VOCAB))
    tokenizer = Wav2Vec2CTCTokenizer(str(directory / "vocab.json"))
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=False)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(directory)
    return directory


def torch_wav2letter(bundle: BuiltBundle):  # type: ignore[no-untyped-def]
    """The bundle's architecture in PyTorch (config from the manifest; random weights, the same compute)."""
    import torch

    from models.wav2letter import Wav2Letter, Wav2LetterConfig

    torch.manual_seed(0)
    return Wav2Letter(Wav2LetterConfig.from_json(bundle.manifest.extra["config"])).eval()


def torch_wav2vec2(bundle: BuiltBundle):  # type: ignore[no-untyped-def]
    """The Hugging Face model the bundle was exported from, as the ONNX graph computes it
    (per-utterance normalisation, logits, log_softmax), in PyTorch eager mode."""
    import torch
    from transformers import Wav2Vec2ForCTC

    model = Wav2Vec2ForCTC.from_pretrained(str(bundle.directory / "hf")).eval()  # default attention (SDPA): PyTorch's fast path

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, waveform: torch.Tensor) -> torch.Tensor:  # [B, N] -> [B, T, V]
            mean = waveform.mean(dim=1, keepdim=True)
            var = waveform.var(dim=1, keepdim=True, unbiased=False)
            return self.model((waveform - mean) / torch.sqrt(var + 1e-7)).logits.log_softmax(dim=-1)

    return Graph().eval()


# --- language models --------------------------------------------------------------------------
def lm_text(corpus: Path | None, cache: Path, *, max_lines: int) -> tuple[Path, str]:
    """Training text for the benchmark's n-gram LM: the corpus's LM text if present, else synthetic."""
    if corpus is not None and corpus.is_file():
        out = cache / f"lm-text-{max_lines}.txt"
        if not out.is_file():
            with corpus.open(encoding="utf-8") as f:
                lines = [line for _, line in zip(range(max_lines), f, strict=False)]
            out.write_text("".join(lines + [s + "\n" for s in SYNTHETIC_SENTENCES]), encoding="utf-8")
        return out, f"first {max_lines} lines of {corpus} + the synthetic sentences"
    out = cache / "lm-text-synthetic.txt"
    out.write_text("\n".join(SYNTHETIC_SENTENCES * 5) + "\n", encoding="utf-8")
    return out, "synthetic sentences only (no corpus)"


def ngram_files(bundle: BuiltBundle, corpus: Path | None, cache: Path, *, max_lines: int) -> tuple[Path, Path, str]:
    """`(arpa, lexicon, note)`: the bundle's shipped LM and lexicon, or a 3-gram built for the benchmark."""
    d = bundle.manifest.decoding
    if d.lm and d.lexicon:
        return bundle.directory / d.lm, bundle.directory / d.lexicon, f"shipped with {bundle.directory.name}"
    from models.lm.build import BuildOptions, build_lm

    text, note = lm_text(corpus, cache, max_lines=max_lines)
    arpa, lexicon = cache / f"{text.stem}.arpa", cache / f"{text.stem}.lexicon.txt"
    if not (arpa.is_file() and lexicon.is_file()):
        build_lm(text=text, arpa=arpa, lexicon=lexicon, options=BuildOptions(order=3, vocab_size=20000))
    return arpa, lexicon, f"3-gram built from {note}"


def txl_bundle(models_dir: Path, cache: Path, *, tiny: bool) -> BuiltBundle:
    """A Transformer-XL LM bundle from `models_dir`, or a random one of the recipe's default size."""
    if not tiny and models_dir.is_dir():
        for directory in sorted(p for p in models_dir.iterdir() if (p / MANIFEST_NAME).is_file()):
            try:
                manifest = Manifest.load(directory)
            except Exception:  # noqa: BLE001
                continue
            if manifest.kind == "lm" and manifest.architecture == "transformer_xl":
                return BuiltBundle(directory, manifest, True, str(directory))
    out = cache / f"txl-{'tiny' if tiny else 'default'}"
    if not (out / MANIFEST_NAME).is_file():
        import contextlib
        import io

        import torch

        from app.asr.tokens import lm_letters
        from export.txl import export_transformer_xl
        from models.train.txl import default_model_config, save_checkpoint
        from models.transformer_xl import TransformerXL, TransformerXLConfig

        torch.manual_seed(0)
        config = (TransformerXLConfig(vocab_size=len(lm_letters()), d_model=32, n_head=2, d_head=16, d_inner=64, n_layer=2, mem_len=64)
                  if tiny else default_model_config(len(lm_letters())))  # fmt: skip
        with tempfile.TemporaryDirectory() as work, contextlib.redirect_stdout(io.StringIO()):
            checkpoint = Path(work) / "txl.pt"
            save_checkpoint(checkpoint, TransformerXL.from_config(config).eval(), step=1)
            _fresh(out)
            export_transformer_xl(checkpoint, out)
    note = "random Transformer-XL, " + ("tiny test size" if tiny else "the recipe's default size (4 x 256)")
    return BuiltBundle(out, Manifest.load(out), False, note)


# --- synthetic emissions ----------------------------------------------------------------------
@dataclass(frozen=True)
class EmissionSet:
    """CTC log-probabilities `[T, V]` per utterance over `tokens`, with their reference texts."""

    emissions: list[np.ndarray]
    references: list[str]
    tokens: TokenTable
    frame_rate: float
    note: str

    @property
    def seconds(self) -> float:
        return sum(len(e) for e in self.emissions) / self.frame_rate


def reference_sentences(corpus_dir: Path | None, count: int) -> tuple[list[str], str]:
    """Held-out sentences (not in the LM's training lines) or the synthetic ones."""
    if corpus_dir is not None:
        for name in ("lm_heldout.txt", "dev.jsonl"):
            path = corpus_dir / name
            if path.is_file():
                lines = path.read_text(encoding="utf-8").splitlines()
                texts = [json.loads(line)["text"] if name.endswith(".jsonl") else line for line in lines if line.strip()]
                texts = [t.strip() for t in texts if 3 <= len(t.split()) <= 20][:count]
                if texts:
                    return texts, str(path)
    return [SYNTHETIC_SENTENCES[i % len(SYNTHETIC_SENTENCES)] for i in range(count)], "synthetic sentences"


def synthetic_emissions(sentences: list[str], *, seed: int = 0, peak: float = 7.0, noise: float = 1.2, confusion: float = 0.03,
                        frame_rate: float = 50.0, source: str = "") -> EmissionSet:
    """Peaky CTC emissions as a trained model's look: each reference letter takes 1-4 frames with
    blanks between, its logit `peak` above the others, Gaussian logit noise `noise`, and a share
    `confusion` of letter frames peaking on a wrong letter. Greedy decoding then makes a
    realistic share of letter errors, which a lexicon and an LM repair."""
    rng = np.random.default_rng(seed)
    table = ctc_letters()
    blank, separator = table.blank_id, table.separator_id
    assert blank is not None and separator is not None
    letters = [i for i in range(len(table)) if i not in (blank, separator)]
    out = []
    for sentence in sentences:
        labels: list[int] = [blank] * int(rng.integers(3, 10))
        ids = table.encode(sentence)
        for i, token in enumerate(ids):
            labels += [token] * int(rng.integers(1, 4)) if token != separator else [separator] * int(rng.integers(1, 3))
            labels += [blank] * int(rng.integers(0 if i + 1 < len(ids) and ids[i + 1] != token else 1, 4))
        labels += [blank] * int(rng.integers(3, 10))
        logits = rng.normal(0.0, noise, size=(len(labels), len(table))).astype(np.float32)
        for t, label in enumerate(labels):
            if label not in (blank, separator) and rng.random() < confusion:
                label = int(rng.choice(letters))
            logits[t, label] += peak
            logits[t, blank] += peak * 0.3  # blank is always a strong second, as in trained CTC models
        out.append(log_softmax(logits))
    return EmissionSet(out, list(sentences), table, frame_rate, f"synthetic peaky CTC emissions of {len(sentences)} sentences from {source}")



def _fresh(directory: Path) -> None:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
