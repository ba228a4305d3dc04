"""Training recipes for the project's wav2vec 2.0: CTC fine-tuning, and self-supervised pretraining.

    python -m models.train.wav2vec2 finetune --train data/corpus/train.jsonl --dev data/corpus/dev.jsonl \
        --out runs/w2v2 --minutes 120 [--init runs/w2v2-pre/last]
    python -m models.train.wav2vec2 pretrain --train data/corpus/train.jsonl --out runs/w2v2-pre --minutes 120

Fine-tuning trains `Wav2Vec2ForCTC` (`models.wav2vec2.small_config`, or the weights of
`--init`: a pretraining checkpoint or any Wav2Vec2ForCTC directory) with Hugging Face's CTC
loss over the project's letters (`ctc_loss_reduction="mean"`: each utterance's loss over
its label count, averaged over the batch) and SpecAugment-style time masking from the
config. Batches hold about `--batch-seconds` of padded audio from length-sorted buckets;
each waveform is augmented (`models.train.augment`), normalised over its own samples, then
padded, with an attention mask. The learning rate warms up over `--warmup` steps and then
follows a cosine to the end of the `--minutes` budget (or `--max-steps`, whichever comes
first), so `--resume` continues the same schedule.

Checkpoints are `save_pretrained` directories with the tokenizer and feature extractor
files, so `OUT/last` and `OUT/best` (lowest dev CER, greedy decoding) export directly:
`asr-export wav2vec2 OUT/best -o bundle`. `OUT/last/trainer_state.pt` holds the optimiser,
step and clock for `--resume`. Loss and dev WER/CER go to stdout and `OUT/log.jsonl`.

Pretraining lives in `models.train.wav2vec2_pretrain`.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import Wav2Vec2ForCTC

from app.asr.decoders.greedy import ctc_segments
from app.asr.metrics import error_rates
from app.asr.tokens import TokenTable
from models.train.common import (
    STATE_FILE,
    adamw,
    learning_rate,
    quiet_transformers,
    resolve_device,
    run_finished,
    save_directory,
    schedule_progress,
)
from models.train.data import Clip, batch_stream, load_clips
from models.wav2vec2 import (
    build_processor,
    count_parameters,
    output_frames,
    project_tokens,
    save_exportable,
    small_config,
    waveform_batch,
)


@dataclass(frozen=True)
class FinetuneConfig:
    """Optimisation and bookkeeping; the architecture lives in the `Wav2Vec2Config`."""

    minutes: float = 120.0  # wall-clock budget the learning-rate schedule spans
    max_steps: int = 0  # 0: no limit; otherwise the schedule ends at whichever comes first
    batch_seconds: float = 100.0  # padded audio per batch
    max_batch: int = 32
    lr: float = 5e-4
    final_lr_ratio: float = 0.02
    warmup: int = 500
    weight_decay: float = 0.01
    clip: float = 5.0
    log_every: int = 25
    eval_every: int = 500
    checkpoint_minutes: float = 5.0
    dev_clips: int = 300
    augment: bool = True
    workers: int = 0  # augmentation worker processes (0: in the training loop)
    freeze_feature_encoder: bool = True  # with --init: keep the pretrained convolutional encoder fixed
    seed: int = 0


# --- fine-tuning -------------------------------------------------------------------------------
def trainable(clip: Clip, table: TokenTable, model_config: Any) -> bool:
    """Clips the table can spell and whose frames can hold the labels (a blank between repeats)."""
    try:
        ids = table.encode(clip.text)
    except ValueError:
        return False
    repeats = sum(a == b for a, b in zip(ids, ids[1:], strict=False))
    return 0 < len(ids) and len(ids) + repeats <= output_frames(model_config, len(clip.audio))


def label_batch(clips: Sequence[Clip], table: TokenTable) -> torch.Tensor:
    """Label ids `[B, L]`, padded with -100 (what Hugging Face's CTC loss ignores)."""
    ids = [table.encode(c.text) for c in clips]
    labels = torch.full((len(ids), max(len(i) for i in ids)), -100, dtype=torch.long)
    for row, seq in enumerate(ids):
        labels[row, : len(seq)] = torch.tensor(seq)
    return labels


def clip_waves(clips: Sequence[Clip]) -> list[np.ndarray]:
    return [c.audio.astype(np.float32) / 32768.0 for c in clips]


@torch.no_grad()
def greedy_transcripts(model: Wav2Vec2ForCTC, waves: Sequence[np.ndarray], table: TokenTable, *, batch_size: int = 8) -> list[str]:
    """Greedy CTC transcripts, decoded as the server decodes (merge repeats, drop blanks)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    blank = table.blank_id or 0
    texts = []
    for start in range(0, len(waves), batch_size):
        chunk = waves[start : start + batch_size]
        values, mask = waveform_batch(chunk)
        logits = model(values.to(device), attention_mask=mask.to(device)).logits  # [B, T, V]
        frames = model._get_feat_extract_output_lengths(mask.sum(-1)).tolist()  # type: ignore[arg-type]
        best = logits.argmax(-1).cpu().numpy()
        for row, count in enumerate(frames):
            texts.append(table.decode([tok for tok, _ in ctc_segments(best[row, : int(count)], blank)]))
    model.train(was_training)
    return texts


def evaluate(model: Wav2Vec2ForCTC, clips: Sequence[Clip], table: TokenTable) -> tuple[float, float, list[tuple[str, str]]]:
    """(WER %, CER %, (reference, hypothesis) pairs) with greedy decoding."""
    hypotheses = greedy_transcripts(model, clip_waves(clips), table)
    pairs = [(c.text, h) for c, h in zip(clips, hypotheses, strict=True)]
    wer, cer = error_rates(pairs)
    return wer, cer, pairs


def load_for_finetuning(init: Path, table: TokenTable) -> Wav2Vec2ForCTC:
    """Wav2Vec2ForCTC from a pretraining checkpoint or a CTC model; a new head for the table."""
    quiet_transformers()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Wav2Vec2ForCTC.from_pretrained(
            str(init), vocab_size=len(table), pad_token_id=table.blank_id, ctc_loss_reduction="mean", ctc_zero_infinity=True,
            ignore_mismatched_sizes=True,
        )  # fmt: skip
    return model


def finetune(train: Sequence[Clip], dev: Sequence[Clip], out: Path, *, config: FinetuneConfig = FinetuneConfig(), model_config: Any = None,
             init: Path | None = None, resume: bool = False, device: str | torch.device = "cpu", echo: Callable[[str], None] = print) -> Wav2Vec2ForCTC:
    """Fine-tune with CTC in `out` (or continue the run there); returns the model in eval mode.

    The model comes from `OUT/last` when resuming, else from `init`, else from `model_config`
    (default `small_config`).
    """
    out.mkdir(parents=True, exist_ok=True)
    table = project_tokens()
    processor = build_processor(table)
    last, state_path = out / "last", out / "last" / STATE_FILE
    state: dict[str, Any] | None = None
    quiet_transformers()
    torch.manual_seed(config.seed)  # the initial weights
    if resume and state_path.is_file():
        model = Wav2Vec2ForCTC.from_pretrained(str(last))  # type: ignore[arg-type]
        state = torch.load(state_path, map_location="cpu", weights_only=False)
    else:
        if resume:
            echo(f"no checkpoint at {last}; starting afresh")
        model = load_for_finetuning(init, table) if init is not None else Wav2Vec2ForCTC(model_config or small_config(len(table)))
    if model.config.vocab_size != len(table):
        raise ValueError(f"model vocabulary {model.config.vocab_size} != the project's CTC table {len(table)}")
    model.config.pad_token_id = table.blank_id  # Hugging Face's CTC loss takes the blank from here
    frozen = config.freeze_feature_encoder and init is not None
    if state is not None:
        frozen = bool(state.get("frozen", False))  # the optimiser state holds exactly the trainable parameters
    if frozen:
        model.freeze_feature_encoder()
    model.to(device).train()  # type: ignore[arg-type]
    optimizer = adamw(model, lr=config.lr, weight_decay=config.weight_decay)
    step, elapsed, best_cer = 0, 0.0, math.inf
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed, best_cer = state["step"], state["elapsed"], state["best_cer"]
        echo(f"resumed from {last} at step {step}, {elapsed / 60:.1f} min")

    usable = [c for c in train if trainable(c, table, model.config)]
    dev = list(dev)[: config.dev_clips]
    if not usable:
        raise ValueError("no training clip fits the token table and its frame count")
    seconds = sum(len(c.audio) for c in usable) / 16000
    echo(f"{len(usable)} training clips ({seconds / 3600:.2f} h, {len(train) - len(usable)} dropped), {len(dev)} dev clips; "
         f"{count_parameters(model) / 1e6:.2f}M parameters")  # fmt: skip
    torch.manual_seed(config.seed + step)
    from models.train.augment import AugmentConfig

    batches = batch_stream(usable, batch_seconds=config.batch_seconds, max_batch=config.max_batch,
                           augment=AugmentConfig() if config.augment else None, seed=config.seed + step, workers=config.workers)  # fmt: skip
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=torch.device(device).type == "cuda")

    def save(directory: Path, *, with_optimizer: bool) -> None:
        def write(tmp: Path) -> None:
            save_exportable(model, processor, tmp)
            torch.save({"optimizer": optimizer.state_dict() if with_optimizer else None, "step": step, "elapsed": elapsed,
                        "best_cer": best_cer, "frozen": frozen, "config": asdict(config)}, tmp / STATE_FILE)  # fmt: skip

        save_directory(directory, write)

    with (out / "log.jsonl").open("a") as log:

        def record(entry: dict[str, Any], line: str) -> None:
            echo(line)
            log.write(json.dumps(entry) + "\n")
            log.flush()

        evaluated_at = -1

        def run_eval() -> None:
            nonlocal best_cer, evaluated_at
            if not dev or evaluated_at == step:
                return
            evaluated_at = step
            wer, cer, pairs = evaluate(model, dev, table)
            record({"step": step, "minutes": elapsed / 60, "dev_wer": wer, "dev_cer": cer},
                   f"eval step {step}: dev WER {wer:.1f} CER {cer:.1f} | {pairs[0][1]!r} vs {pairs[0][0]!r}")  # fmt: skip
            if cer < best_cer:
                best_cer = cer
                save(out / "best", with_optimizer=False)

        started = time.time() - elapsed
        last_save = time.time()
        losses: list[float] = []
        while not run_finished(step=step, elapsed=elapsed, minutes=config.minutes, max_steps=config.max_steps):
            idx, waves = next(batches)
            clips = [usable[i] for i in idx]
            values, mask = waveform_batch(waves)
            labels = label_batch(clips, table)
            progress = schedule_progress(step=step, elapsed=elapsed, minutes=config.minutes, max_steps=config.max_steps)
            lr = learning_rate(step=step, progress=progress, lr=config.lr, warmup=config.warmup, final_lr_ratio=config.final_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with autocast:
                loss = model(values.to(device), attention_mask=mask.to(device), labels=labels.to(device)).loss
            optimizer.zero_grad(set_to_none=True)
            if torch.isfinite(loss):
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
                optimizer.step()
                losses.append(loss.item())
            step += 1
            elapsed = time.time() - started
            if step % config.log_every == 0 and losses:
                mean = float(np.mean(losses))
                record({"step": step, "minutes": elapsed / 60, "loss": mean, "lr": lr},
                       f"step {step} {elapsed / 60:.1f} min lr {lr:.2e} loss {mean:.3f}")  # fmt: skip
                losses = []
            if step % config.eval_every == 0:
                run_eval()
            if time.time() - last_save > config.checkpoint_minutes * 60:
                save(last, with_optimizer=True)
                last_save = time.time()
        if losses:
            record({"step": step, "minutes": elapsed / 60, "loss": float(np.mean(losses)), "lr": lr}, f"step {step} loss {np.mean(losses):.3f}")
        save(last, with_optimizer=True)
        run_eval()
    return model.eval()


# --- command line ------------------------------------------------------------------------------
def add_config_arguments(parser: argparse.ArgumentParser, config_type: type, skip: tuple[str, ...] = ()) -> None:
    """One `--flag` per field of a frozen options dataclass (booleans take `--flag` / `--no-flag`)."""
    defaults = config_type()
    for f in fields(config_type):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        value = getattr(defaults, f.name)
        if isinstance(value, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=value)
        else:
            parser.add_argument(flag, type=type(value), default=value)


def config_from_arguments(args: argparse.Namespace, config_type: type) -> Any:
    return config_type(**{f.name: getattr(args, f.name) for f in fields(config_type) if hasattr(args, f.name)})


def model_overrides(args: argparse.Namespace) -> dict[str, Any]:
    sizes = {"hidden_size": args.hidden, "num_hidden_layers": args.layers, "num_attention_heads": args.heads,
             "intermediate_size": args.intermediate}  # fmt: skip
    overrides: dict[str, Any] = {k: v for k, v in sizes.items() if v is not None}
    if args.conv_dim is not None:
        overrides["conv_dim"] = (args.conv_dim,) * 7
    return overrides


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m models.train.wav2vec2", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="recipe", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--train", type=Path, nargs="+", required=True, help="JSONL manifests of {audio, text}")
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--resume", action="store_true", help="continue from OUT/last")
        p.add_argument("--device", default="auto", help="auto, cpu or cuda")
        p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
        p.add_argument("--load-workers", type=int, default=1, help="processes decoding the corpus at start-up")
        p.add_argument("--limit", type=int, default=None, help="use only the first N training clips (smoke runs)")
        p.add_argument("--max-seconds", type=float, default=20.0, help="drop longer clips")
        for flag in ("--hidden", "--layers", "--heads", "--intermediate", "--conv-dim"):
            p.add_argument(flag, type=int, default=None, help="model size override (default: models.wav2vec2.small_config)")

    ft = sub.add_parser("finetune", help="CTC fine-tuning (from scratch or from --init)")
    common(ft)
    ft.add_argument("--dev", type=Path, nargs="+", required=True)
    ft.add_argument("--init", type=Path, default=None, help="pretraining checkpoint or Wav2Vec2ForCTC directory to start from")
    add_config_arguments(ft, FinetuneConfig)

    from models.train.wav2vec2_pretrain import PretrainConfig

    pt = sub.add_parser("pretrain", help="self-supervised pretraining (contrastive + diversity loss)")
    common(pt)
    add_config_arguments(pt, PretrainConfig)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    overrides = model_overrides(args)
    model_config = small_config(len(project_tokens()), **overrides)
    if args.recipe == "finetune":
        train = load_clips(args.train, limit=args.limit, max_seconds=args.max_seconds, workers=args.load_workers)
        dev = load_clips(args.dev, max_seconds=args.max_seconds)
        config = config_from_arguments(args, FinetuneConfig)
        if args.init is not None and overrides:
            print("model size options are ignored with --init (the checkpoint's sizes win)")
        finetune(train, dev, args.out, config=config, model_config=model_config, init=args.init, resume=args.resume, device=device)
    else:
        from models.train.wav2vec2_pretrain import PretrainConfig, load_waves, pretrain

        waves = load_waves(args.train, max_seconds=args.max_seconds, limit=args.limit)
        pretrain(waves, args.out, config=config_from_arguments(args, PretrainConfig), model_config=model_config,
                 resume=args.resume, device=device)  # fmt: skip


if __name__ == "__main__":
    main()
