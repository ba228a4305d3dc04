"""`asr-export`: checkpoints to verified bundles, one subcommand per source.

    asr-export wav2letter runs/w2l/best.pt -o models/bundles/wav2letter-asg --int8
    asr-export wav2letter ta_state.pt --torchaudio-tokens tokens.txt -o bundles/ta-w2l
    asr-export wav2vec2 ~/wav2vec2-base-960h -o bundles/wav2vec2-base-960h --int8
    asr-export wav2vec2-torchaudio state.pt --builder wav2vec2_base --tokens tokens.txt -o bundles/w2v
    asr-export whisper runs/whisper-ctc-base/best.pt --init whisper-base/model.bin -o models/bundles/whisper-ctc-base --dev dev.jsonl
    asr-export txl runs/txl/last.pt -o models/bundles/txl-char
    asr-export streaming models/bundles/wav2letter-asg --checkpoint models/checkpoints/wav2letter-asg.pt
    asr-export punctuation runs/punct/last.pt -o models/bundles/punctuation --int8

Each prints the parity check it ran and exits non-zero when parity fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asr-export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="source", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("-o", "--out", type=Path, required=True, help="bundle directory to write")
        p.add_argument("--name", help="model name served by the API (default: the directory name)")
        p.add_argument("--quantize", choices=["int8"], help="also write a dynamically quantized int8 graph")
        p.add_argument("--int8", action="store_true", help="same as --quantize int8")
        p.add_argument("--fp16", action="store_true", help="also write an fp16 graph (for GPUs)")

    w2l = sub.add_parser("wav2letter", help="project Wav2Letter checkpoint (ASG or CTC) or torchaudio Wav2Letter state dict")
    w2l.add_argument("checkpoint", type=Path)
    w2l.add_argument("--torchaudio-tokens", type=Path, help="token list (one per line): the checkpoint is a torchaudio state dict")
    w2l.add_argument("--blank", default="<blank>", help="blank token of a torchaudio model's token list")
    w2l.add_argument("--decoding", type=Path, help="JSON file of decoding defaults (beam size, LM weight ...)")
    w2l.add_argument("--lm", type=Path, help="n-gram LM to ship in the bundle: ARPA (plain or .gz) or a KenLM binary from build_binary (needs --lexicon)")
    w2l.add_argument("--lexicon", type=Path, help="lexicon to ship in the bundle")
    w2l.add_argument("--calibrate", type=Path, help="JSONL manifest of real audio to calibrate int8 on (default: synthetic speech-like signals)")
    w2l.add_argument("--calibrate-count", type=int, default=32)
    common(w2l)

    hf = sub.add_parser("wav2vec2", help="Hugging Face Wav2Vec2ForCTC directory (save_pretrained + tokenizer files)")
    hf.add_argument("model_dir", type=Path)
    common(hf)

    ta = sub.add_parser("wav2vec2-torchaudio", help="torchaudio Wav2Vec2Model state dict + builder + token list")
    ta.add_argument("checkpoint", type=Path)
    ta.add_argument("--builder", default="wav2vec2_base",
                    help="torchaudio.models builder name (wav2vec2_base, hubert_large, ...) or a JSON file of wav2vec2_model keyword arguments")
    ta.add_argument("--tokens", type=Path, required=True, help="token list, one per line, blank first unless --blank says otherwise")
    ta.add_argument("--blank", default="<blank>")
    common(ta)

    wh = sub.add_parser("whisper", help="Whisper encoder + CTC head: a models.train.whisper_ctc checkpoint (.pt) or a CTranslate2 model.bin")
    wh.add_argument("checkpoint", type=Path)
    wh.add_argument("--init", type=Path, help="the CTranslate2 model.bin a checkpoint's frozen layers come from (default: the path it records)")
    wh.add_argument("-o", "--out", type=Path, required=True, help="bundle directory to write")
    wh.add_argument("--name", help="model name served by the API (default: the directory name)")
    wh.add_argument("--precisions", nargs="+", default=["int8"], choices=["fp32", "int8"], help="graphs to ship (default: int8, what the server runs)")
    wh.add_argument("--dev", type=Path, help="JSONL manifest of real speech: int8 must keep 97%% of fp32's greedy words on it")
    wh.add_argument("--dev-limit", type=int, default=60)
    wh.add_argument("--min-agreement", type=float, default=0.97, help="share of fp32's greedy dev words int8 must keep")
    wh.add_argument("--decoding", type=Path, help="JSON file of decoding defaults (beam size, LM weight ...)")
    wh.add_argument("--lm", type=Path, help="n-gram LM to ship in the bundle (ARPA or KenLM binary; needs --lexicon)")
    wh.add_argument("--lexicon", type=Path, help="lexicon to ship in the bundle")
    wh.add_argument("--default", action="store_true", help="mark the bundle as the one served to requests that name no model")

    tune = sub.add_parser("tune", help="tune an acoustic bundle's LM weight, word score and rescoring alpha/beta on held-out data")
    tune.add_argument("bundle", type=Path)
    tune.add_argument("--dev", type=Path, required=True, help="JSONL manifest of {audio, text}")
    tune.add_argument("--txl", type=Path, help="Transformer-XL LM bundle to tune rescoring with")
    tune.add_argument("--limit", type=int, default=150)
    tune.add_argument("--beam-size", type=int, default=32)
    tune.add_argument("--write", action="store_true", help="store the chosen values as the bundle's decoding defaults")

    compact = sub.add_parser("compact", help="store a bundle's fp32 graph with fp16 weights (half the size, fp32 arithmetic)")
    compact.add_argument("bundle", type=Path)

    streaming = sub.add_parser("streaming", help="give an existing Wav2Letter bundle the graph that streams with per-layer caches")
    streaming.add_argument("bundle", type=Path)
    streaming.add_argument("--checkpoint", type=Path, required=True, help="the project checkpoint the bundle was exported from")

    txl = sub.add_parser("txl", help="project Transformer-XL character LM checkpoint")
    txl.add_argument("checkpoint", type=Path)
    txl.add_argument("-o", "--out", type=Path, required=True)
    txl.add_argument("--quantize", choices=["int8"])
    txl.add_argument("--int8", action="store_true")

    punct = sub.add_parser("punctuation", help="punctuation and casing tagger checkpoint (models.train.punctuation)")
    punct.add_argument("checkpoint", type=Path)
    punct.add_argument("-o", "--out", type=Path, required=True)
    punct.add_argument("--name", help="bundle name (default: the directory name)")
    punct.add_argument("--quantize", choices=["int8"])
    punct.add_argument("--int8", action="store_true", help="write the int8 graph (and drop the fp32 one unless --keep-fp32)")
    punct.add_argument("--keep-fp32", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    from app.asr.manifest import Manifest

    args = build_parser().parse_args(argv)
    int8 = bool(getattr(args, "int8", False) or getattr(args, "quantize", None) == "int8")
    try:
        if args.source == "wav2letter":
            from app.asr.manifest import DecodingDefaults
            from export.bundle_files import attach_decoding_files
            from export.wav2letter import export_wav2letter

            decoding = DecodingDefaults(**json.loads(args.decoding.read_text())) if args.decoding else None
            calibration = None
            if args.calibrate:
                from app.asr.audio import decode_audio
                from models.train.manifest import read_manifest

                rows = read_manifest(args.calibrate, limit=args.calibrate_count)
                calibration = [decode_audio(Path(r["audio"]).read_bytes(), sample_rate=16000, max_seconds=60).samples for r in rows]
            manifest = export_wav2letter(args.checkpoint, args.out, name=args.name, int8=int8, torchaudio_tokens=args.torchaudio_tokens,
                                         blank=args.blank, decoding=decoding, calibration=calibration)
            if args.lm or args.lexicon:
                manifest = attach_decoding_files(args.out, lm=args.lm, lexicon=args.lexicon)
        elif args.source == "tune":
            from export.bundle_files import attach_decoding_files
            from export.tune import tune

            result = tune(args.bundle, args.dev, txl_dir=args.txl, limit=args.limit, beam_size=args.beam_size)
            print(f"chosen: {result}")
            if not args.write:
                return 0
            values = {"lm_weight": result.lm_weight, "word_score": result.word_score, "decoder": "beam", "beam_size": args.beam_size}
            if result.rescore_alpha is not None:
                values |= {"rescore_alpha": result.rescore_alpha, "rescore_beta": result.rescore_beta, "rescorer": Manifest.load(args.txl).name}
            manifest = attach_decoding_files(args.bundle, **values)
        elif args.source == "compact":
            from export.compact import compact_bundle

            manifest = compact_bundle(args.bundle)
        elif args.source == "streaming":
            from export.streaming import add_streaming

            manifest = add_streaming(args.bundle, args.checkpoint)
        elif args.source == "whisper":
            from app.asr.manifest import DecodingDefaults
            from export.bundle_files import attach_decoding_files
            from export.whisper_ctc import export_whisper_ctc

            decoding = DecodingDefaults(**json.loads(args.decoding.read_text())) if args.decoding else None
            manifest = export_whisper_ctc(args.checkpoint, args.out, init=args.init, name=args.name, precisions=args.precisions, dev=args.dev,
                                          dev_limit=args.dev_limit, decoding=decoding, default=args.default,
                                          min_agreement=args.min_agreement)
            if args.lm or args.lexicon:
                manifest = attach_decoding_files(args.out, lm=args.lm, lexicon=args.lexicon)
        elif args.source == "wav2vec2":
            from export.wav2vec2 import export_wav2vec2_hf

            manifest = export_wav2vec2_hf(args.model_dir, args.out, name=args.name, int8=int8, fp16=args.fp16)
        elif args.source == "wav2vec2-torchaudio":
            from export.wav2vec2 import export_wav2vec2_torchaudio

            manifest = export_wav2vec2_torchaudio(args.checkpoint, args.out, builder=args.builder, tokens=args.tokens, blank=args.blank,
                                                  name=args.name, int8=int8, fp16=args.fp16)
        elif args.source == "punctuation":
            from export.punctuation import export_punctuation

            manifest = export_punctuation(args.checkpoint, args.out, name=args.name, int8=int8, keep_fp32=args.keep_fp32)
        else:
            from export.txl import export_transformer_xl

            manifest = export_transformer_xl(args.checkpoint, args.out, int8=int8)
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        print(f"asr-export: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote bundle {manifest.name!r} to {getattr(args, 'out', None) or args.bundle} ({', '.join(sorted(manifest.files))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
