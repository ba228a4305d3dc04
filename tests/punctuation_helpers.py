"""A tiny punctuation bundle, trained for a few steps on a made-up corpus through the real recipe and exporter."""

from __future__ import annotations

import gzip
from pathlib import Path

SENTENCES = [
    "He turned sharply, and faced Gregson across the table.",
    "Who is it?",
    "Oh! come in, Mr. McDonald.",
    "It was a bright cold day in April, and the clocks were striking thirteen.",
    "Where did you find that apple?",
    "The children were playing in the garden, and the dog slept.",
    "She walked to the store to buy some bread.",
    "Nothing broke the stillness but the soft crackle of the fire.",
]


def write_corpus(text_dir: Path, *, repeats: int = 60) -> Path:
    text_dir.mkdir(parents=True, exist_ok=True)
    with gzip.open(text_dir / "gutenberg_more.txt.gz", "wt", encoding="utf-8") as f:
        for _ in range(repeats):
            for sentence in SENTENCES:
                f.write(sentence + "\n")
    (text_dir / "common_voice_sentences.txt").write_text("".join(s + "\n" for s in SENTENCES[::-1] * 20), encoding="utf-8")
    return text_dir


def build_tiny_punctuation(root: Path, *, steps: int = 200) -> Path:
    """Prepare, train and export a tiny tagger; returns the bundle directory."""
    from export.punctuation import export_punctuation
    from models.train.punctuation import BatchConfig, TrainConfig, prepare, train

    write_corpus(root / "data" / "text")
    prepare(root / "data", root / "prepared", vocab_size=200, suffix_buckets=64, known_min_count=1)
    checkpoint = train(root / "prepared", root / "run", model_config={"d_model": 32, "d_embed": 16, "n_layer": 1, "n_head": 2, "d_inner": 64},
                       batch=BatchConfig(tokens=512, min_words=8, max_words=32, max_error_rate=0.0),
                       config=TrainConfig(minutes=0, steps=steps, lr=3e-3, warmup=5, log_every=1000, eval_minutes=1000, eval_words=200), threads=1)
    out = root / "bundle" / "punctuation"
    export_punctuation(checkpoint, out, int8=True)
    return out
