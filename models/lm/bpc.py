"""Bits per character of a Transformer-XL LM bundle on held-out text, with and without memory.

    python -m models.lm.bpc --bundle models/bundles/txl-char --text runs/lm/books_heldout.txt --chars 200000

The measure of `models.train.txl.evaluate`, on the exported ONNX graph (no torch): the text
(one normalised sentence a line, in reading order) becomes the stream `<eos> s1 <eos> s2 ...`,
cut into `--streams` parallel streams scored in consecutive segments of `--segment`
characters. With memory, each segment reads the memory the previous one left (`mems_out`),
as the model was trained; without, every segment starts from nothing.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from app.asr.manifest import Manifest
from app.asr.numerics import log_softmax
from app.asr.runtime import create_session, select_providers
from app.asr.text import normalize_text
from app.asr.tokens import encode_sentences


def bits_per_character(session, ids: np.ndarray, *, streams: int, segment: int, n_layer: int, d_model: int,  # type: ignore[no-untyped-def]
                       carry_memory: bool) -> float:
    """Mean -log2 p over every predicted position; `ids` `[N]` int64."""
    per_stream = len(ids) // streams
    data = ids[: per_stream * streams].reshape(streams, per_stream)  # [B, N/B]
    empty = np.zeros((n_layer, streams, 0, d_model), dtype=np.float32)
    mems, total, count = empty, 0.0, 0
    for start in range(0, per_stream - 1 - segment + 1, segment):
        inputs, targets = data[:, start : start + segment], data[:, start + 1 : start + 1 + segment]  # [B, T]
        logits, mems_out = session.run(["logits", "mems_out"], {"tokens": inputs, "mems_in": mems if carry_memory else empty})
        logprobs = log_softmax(logits)  # [B, T, V]
        total -= float(np.take_along_axis(logprobs, targets[:, :, None], axis=2).sum())
        count += targets.size
        mems = mems_out
    return total / max(count, 1) / math.log(2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m models.lm.bpc", description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True, help="a Transformer-XL LM bundle")
    parser.add_argument("--text", type=Path, required=True, help="held-out text, one sentence a line, reading order")
    parser.add_argument("--chars", type=int, default=200_000, help="score the first N characters of the stream")
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--segment", type=int, default=128)
    parser.add_argument("--precision", default="fp32")
    args = parser.parse_args(argv)

    manifest = Manifest.load(args.bundle)
    session = create_session(args.bundle / manifest.files[args.precision].path, threads=2, providers=select_providers("cpu"))
    sentences = [s for s in (normalize_text(line) for line in args.text.read_text(encoding="utf-8").splitlines()) if s]
    ids = np.asarray(encode_sentences(manifest.tokens, sentences), dtype=np.int64)[: args.chars + 1]
    n_layer, d_model = int(manifest.extra["n_layer"]), int(manifest.extra["d_model"])
    result = {"bundle": str(args.bundle), "precision": args.precision, "text": str(args.text), "chars": len(ids) - 1,
              "streams": args.streams, "segment": args.segment, "mem_len": manifest.extra.get("mem_len")}
    for carry in (True, False):
        bpc = bits_per_character(session, ids, streams=args.streams, segment=args.segment, n_layer=n_layer, d_model=d_model, carry_memory=carry)
        result["bpc_memory" if carry else "bpc_no_memory"] = round(bpc, 4)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
