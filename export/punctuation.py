"""Export a punctuation tagger checkpoint (`models.train.punctuation`) to a punctuation bundle.

    asr-export punctuation runs/punct/last.pt -o models/bundles/punctuation --int8

The graph (opset 17):

    inputs   words        [B, T]  int64   vocabulary ids (0 pad, 1 unknown)
             suffixes     [B, T]  int64   hashed last-three-letter ids
    outputs  case_logits  [B, T, C] float32
             mark_logits  [B, T, M] float32

Side files: `vocab.txt` (the vocabulary, one word per line) and `known_forms.json` (mixed-case
forms and abbreviations). The parity check runs the exported graphs on windows of real text
(or random ids) and requires the fp32 logits to match PyTorch within `PARITY_TOLERANCE`
and the int8 labels to agree with PyTorch's on at least `INT8_AGREEMENT` of the words.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.asr.manifest import Manifest, PunctuationSpec, TokenTable, file_entry
from app.asr.punctuation_text import CASES, MARKS, Vocabulary, label_text
from export import EXPORTER_VERSION
from export.onnx_utils import ParityError, cpu_session, relative_error
from export.quantize import quantize_int8, quiet_root_logger
from models.punctuation import load_checkpoint

FP32_FILE = "punctuation.fp32.onnx"
INT8_FILE = "punctuation.int8.onnx"
VOCAB_FILE = "vocab.txt"
KNOWN_FILE = "known_forms.json"
INPUT_NAMES = ("words", "suffixes")
OUTPUT_NAMES = ("case_logits", "mark_logits")
OPSET = 17
PARITY_TOLERANCE = 1e-4
INT8_AGREEMENT = 0.97
PARITY_TEXT = ("He turned sharply, and faced Gregson across the table. \"Who is it?\" said Mr. McDonald. "
               "It was a bright cold day in April, and the clocks were striking thirteen! Nothing broke the stillness.")


def export_punctuation(checkpoint: Path, out: Path, *, name: str | None = None, int8: bool = True, keep_fp32: bool = False,
                       parity_text: str = PARITY_TEXT) -> Manifest:
    """Write the bundle; the fp32 graph is kept only with `keep_fp32` (or without `int8`)."""
    model, saved = load_checkpoint(checkpoint)
    config = model.config
    out.mkdir(parents=True, exist_ok=True)
    vocabulary = Vocabulary(saved["vocab"], suffix_buckets=config.suffix_buckets)
    vocabulary.write(out / VOCAB_FILE)
    (out / KNOWN_FILE).write_text(json.dumps(saved["known"], indent=0, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    fp32 = out / FP32_FILE
    example = torch.randint(2, config.vocab_size, (1, 16)), torch.randint(1, config.suffix_buckets + 1, (1, 16))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, example, str(fp32), input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                          dynamic_axes={n: {0: "batch", 1: "words"} for n in (*INPUT_NAMES, *OUTPUT_NAMES)}, opset_version=OPSET, dynamo=False)
    inputs = parity_inputs(vocabulary, parity_text, max_words=config.max_words)
    parity: dict[str, Any] = {"fp32_relative_error": check_fp32(model, fp32, inputs)}
    files = {"fp32": FP32_FILE}
    if int8:
        with quiet_root_logger():
            quantize_int8(fp32, out / INT8_FILE, op_types=("Conv", "MatMul", "Gemm", "Gather"))
        parity["int8_label_agreement"] = check_int8(model, out / INT8_FILE, inputs)
        files = {"int8": INT8_FILE} | ({"fp32": FP32_FILE} if keep_fp32 else {})
        if not keep_fp32:
            fp32.unlink()
    spec = PunctuationSpec(vocabulary=VOCAB_FILE, known_forms=KNOWN_FILE, cases=CASES, marks=MARKS, suffix_buckets=config.suffix_buckets,
                           max_words=config.max_words, window=min(128, config.max_words), overlap=32)
    manifest = Manifest(name=name or out.name, kind="punctuation", architecture="punctuation_tagger", tokens=TokenTable(()),
                        files={p: file_entry(out, f) for p, f in files.items()},
                        side_files={"vocabulary": file_entry(out, VOCAB_FILE), "known_forms": file_entry(out, KNOWN_FILE)},
                        punctuation=spec, parity=parity, extra={"config": config.to_json(), "training": _training_summary(saved)},
                        source={"exporter_version": EXPORTER_VERSION, "checkpoint": str(checkpoint), "torch": torch.__version__})
    manifest.write(out)
    return Manifest.load(out)


def _training_summary(saved: dict[str, Any]) -> dict[str, Any]:
    return {k: saved.get(k) for k in ("step", "words_seen", "heldout_first_line", "dev") if saved.get(k) is not None}


def parity_inputs(vocabulary: Vocabulary, text: str, *, max_words: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Windows of the parity text (whole, a prefix, one word), and a random window of the longest length."""
    words = [w.word for w in label_text(text)]
    rng = np.random.default_rng(0)
    out = []
    for piece in (words, words[:5], words[:1]):
        ids, suffixes = vocabulary.ids(piece)
        out.append((np.array([ids], np.int64), np.array([suffixes], np.int64)))
    out.append((rng.integers(0, len(vocabulary), (2, max_words)).astype(np.int64), rng.integers(1, vocabulary.suffix_buckets + 1, (2, max_words)).astype(np.int64)))
    return out


def check_fp32(model: torch.nn.Module, path: Path, inputs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    session = cpu_session(path)
    worst = 0.0
    with torch.no_grad():
        for words, suffixes in inputs:
            expected = model(torch.from_numpy(words), torch.from_numpy(suffixes))
            actual = session.run(list(OUTPUT_NAMES), {"words": words, "suffixes": suffixes})
            worst = max(worst, *(relative_error(a, e.numpy()) for a, e in zip(actual, expected, strict=True)))
    if worst > PARITY_TOLERANCE:
        raise ParityError(f"fp32 punctuation graph differs from PyTorch: relative error {worst:.2e} > {PARITY_TOLERANCE}")
    print(f"parity fp32: max relative error {worst:.2e} over {len(inputs)} windows")
    return worst


def check_int8(model: torch.nn.Module, path: Path, inputs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    session = cpu_session(path)
    agree = total = 0
    with torch.no_grad():
        for words, suffixes in inputs[:-1]:  # real text only: random ids have no clear labels
            expected = model(torch.from_numpy(words), torch.from_numpy(suffixes))
            actual = session.run(list(OUTPUT_NAMES), {"words": words, "suffixes": suffixes})
            for a, e in zip(actual, expected, strict=True):
                agree += int((a.argmax(-1) == e.numpy().argmax(-1)).sum())
                total += a.shape[0] * a.shape[1]
    agreement = agree / max(total, 1)
    if agreement < INT8_AGREEMENT:
        raise ParityError(f"int8 punctuation graph agrees with PyTorch on {agreement:.1%} of labels (< {INT8_AGREEMENT:.0%})")
    print(f"parity int8: {agreement:.1%} of labels as PyTorch's")
    return round(agreement, 4)
