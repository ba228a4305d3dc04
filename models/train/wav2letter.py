"""Training recipe for Wav2Letter acoustic models with ASG or CTC.

    python -m models.train.wav2letter --train data/corpus/train.jsonl --dev data/corpus/dev.jsonl \
        --out runs/w2l-asg --criterion asg --minutes 120

The learning-rate schedule runs on wall-clock time (warm-up, then cosine to the `--minutes`
budget), so a run sized for a session finishes with a decayed model, and `--resume`
continues the same schedule. Checkpoints (`last.pt`, `best.pt` by dev CER) hold the model
config, the token table and the ASG transitions: everything `asr-export wav2letter` needs.

On a GPU (`--device cuda`) the convolutions run in bfloat16 autocast while both criteria
stay in float32, and augmentation runs in `--workers` loader processes. Checkpoints are
always written with CPU tensors, so they load anywhere.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from app.asr.decoders.greedy import asg_segments, ctc_segments, viterbi_asg
from app.asr.metrics import error_rates
from app.asr.tokens import TokenTable, asg_letters, ctc_letters
from models.asg import ASGLoss
from models.train.common import learning_rate, resolve_device
from models.train.data import Clip, batch_stream, load_clips
from models.wav2letter import Wav2Letter, Wav2LetterConfig


def target_ids(text: str, table: TokenTable) -> list[int]:
    """Label ids of a transcript. ASG has no blank, so silence before the first and after the
    last word must belong to some label: like wav2letter's `--surround`, ASG targets start and
    end with the word separator, which decodes to nothing (otherwise the edge letters swallow
    the silence and the model learns to hallucinate letters there)."""
    ids = table.encode(text)
    if table.blank is None and table.word_separator is not None:
        sep = table.index[table.word_separator]
        ids = [sep, *ids, sep]
    return ids


def encode_batch(clips: list[Clip], table: TokenTable) -> tuple[torch.Tensor, torch.Tensor]:
    ids = [target_ids(c.text, table) for c in clips]
    lengths = torch.tensor([len(i) for i in ids])
    padded = torch.full((len(ids), int(lengths.max())), -1, dtype=torch.long)
    for row, seq in enumerate(ids):
        padded[row, : len(seq)] = torch.tensor(seq)
    return padded, lengths


def pad_waves(waves: list[np.ndarray], config: Wav2LetterConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Waveforms with the runtime's zero padding around each, right-padded to the longest."""
    left, right = config.padding()
    total = max(len(w) for w in waves) + left + right
    batch = torch.zeros(len(waves), total)
    for i, w in enumerate(waves):
        batch[i, left : left + len(w)] = torch.from_numpy(w)
    lengths = torch.tensor([config.output_frames(len(w) + left + right) for w in waves])
    return batch, lengths


def decode(emissions: np.ndarray, table: TokenTable, criterion: str, transitions: np.ndarray | None) -> str:
    if criterion == "asg":
        assert transitions is not None
        path, _ = viterbi_asg(emissions, transitions)
        labels = [tok for tok, _ in asg_segments(path)]
    else:
        labels = [tok for tok, _ in ctc_segments(emissions.argmax(axis=1), table.blank_id or 0)]
    return table.decode(labels)


@torch.no_grad()
def evaluate(model: Wav2Letter, loss_fn: nn.Module | None, clips: list[Clip], table: TokenTable, criterion: str) -> tuple[float, float, list[tuple[str, str]]]:
    model.eval()
    device = next(model.parameters()).device
    transitions = loss_fn.transitions.detach().float().cpu().numpy() if isinstance(loss_fn, ASGLoss) else None
    pairs = []
    for start in range(0, len(clips), 16):
        chunk = clips[start : start + 16]
        waves = [c.audio.astype(np.float32) / 32768 for c in chunk]
        batch, lengths = pad_waves(waves, model.config)
        emissions = model(batch.to(device)).float().cpu().numpy()
        for i, clip in enumerate(chunk):
            pairs.append((clip.text, decode(emissions[i, : lengths[i]], table, criterion, transitions)))
    model.train()
    wer, cer = error_rates(pairs)
    return wer, cer, pairs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, nargs="+", required=True)
    parser.add_argument("--dev", type=Path, nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--criterion", choices=["asg", "ctc"], default="asg")
    parser.add_argument("--channels", type=int, help="conv width (default 256, or --init's architecture)")
    parser.add_argument("--kernel", type=int, help="conv kernel (default 11, or --init's architecture)")
    parser.add_argument("--depth", type=int, help="conv layers after the strided one (default 8, or --init's architecture)")
    parser.add_argument("--minutes", type=float, default=120.0, help="wall-clock budget the LR schedule spans")
    parser.add_argument("--batch-seconds", type=float, default=150.0)
    parser.add_argument("--lr", type=float, default=1.5e-3)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--workers", type=int, default=0, help="augmentation worker processes (0: in the training loop)")
    parser.add_argument("--load-workers", type=int, default=1, help="processes decoding the corpus at start-up")
    parser.add_argument("--max-batch", type=int, default=64, help="clips per batch at most")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training clips (smoke runs)")
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--augment-clean", type=float, default=0.3, help="share of clips left unaugmented")
    parser.add_argument("--warp", type=float, nargs=2, default=(0.88, 1.12), metavar=("LOW", "HIGH"),
                        help="spectral warp factors (above 1 moves formants and pitch up: male voices towards female ones)")
    parser.add_argument("--p-warp", type=float, default=0.3, help="probability of the spectral warp")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--init", type=Path, help="start from another checkpoint's weights (e.g. ASG from CTC): output rows are matched by token")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    table = asg_letters() if args.criterion == "asg" else ctc_letters()
    config = model_config(args, len(table))
    model = Wav2Letter(config)
    loss_fn: nn.Module = ASGLoss(len(table)) if args.criterion == "asg" else nn.CTCLoss(blank=table.blank_id or 0, reduction="none", zero_infinity=True)
    if args.init is not None and not (args.resume and (args.out / "last.pt").exists()):
        initialise_from(model, args.init, table)
    model.to(device)
    loss_fn.to(device)
    params = [{"params": model.parameters(), "weight_decay": 1e-2}]
    if isinstance(loss_fn, ASGLoss):
        params.append({"params": loss_fn.parameters(), "weight_decay": 0.0})
    optimizer = torch.optim.AdamW(params, lr=args.lr)
    step, elapsed, best_cer = 0, 0.0, math.inf
    last = args.out / "last.pt"
    if args.resume and last.exists():
        state = torch.load(last, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        loss_fn.load_state_dict(state["criterion_state"])
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed, best_cer = state["step"], state["elapsed"], state.get("best_cer", math.inf)
        print(f"resumed at step {step}, {elapsed / 60:.1f} min")

    augment = None
    if not args.no_augment:
        from models.train.augment import AugmentConfig

        augment = AugmentConfig(p_clean=args.augment_clean, p_warp=args.p_warp, warp_range=(args.warp[0], args.warp[1]))
    train = load_clips(args.train, limit=args.limit, workers=args.load_workers)
    train = [c for c in train if _trainable(c, table, config)]
    dev = load_clips(args.dev)[:300]
    print(f"{len(train)} training clips ({sum(len(c.audio) for c in train) / 16000 / 3600:.2f} h), {len(dev)} dev clips; {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")
    batches = batch_stream(train, batch_seconds=args.batch_seconds, max_batch=args.max_batch, augment=augment,
                           seed=args.seed + step, workers=args.workers)  # fmt: skip

    def save(path: Path) -> None:
        torch.save({"architecture": "wav2letter", "criterion": args.criterion, "config": config.to_json(), "tokens": table.to_json(),
                    "model": _cpu(model.state_dict()), "criterion_state": _cpu(loss_fn.state_dict()),
                    "transitions": loss_fn.transitions.detach().cpu().clone() if isinstance(loss_fn, ASGLoss) else None,
                    "optimizer": _cpu(optimizer.state_dict()), "step": step, "elapsed": elapsed, "best_cer": best_cer}, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)

    log = (args.out / "log.jsonl").open("a")
    model.train()
    started, last_save, losses = time.time() - elapsed, time.time(), []
    while elapsed < args.minutes * 60 and (args.max_steps is None or step < args.max_steps):
        idx, waves = next(batches)
        clips = [train[i] for i in idx]
        batch, lengths = pad_waves(waves, config)
        targets, target_lengths = encode_batch(clips, table)
        batch, lengths, targets, target_lengths = (t.to(device, non_blocking=True) for t in (batch, lengths, targets, target_lengths))
        fraction = elapsed / (args.minutes * 60)
        lr = learning_rate(step=step, progress=min(fraction, 1.0), lr=args.lr, warmup=args.warmup, final_lr_ratio=0.0)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with autocast:
            emissions = model(batch)  # [B, T, V]
        emissions = emissions.float()
        if isinstance(loss_fn, ASGLoss):
            per_utt = loss_fn(emissions, targets, lengths, target_lengths)
        else:
            per_utt = loss_fn(emissions.log_softmax(-1).transpose(0, 1), targets.clamp(min=0), lengths, target_lengths)
        loss = (per_utt / lengths.clamp(min=1)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(list(model.parameters()) + list(loss_fn.parameters()), 5.0)
        optimizer.step()
        step += 1
        elapsed = time.time() - started
        losses.append(loss.item())
        if step % args.log_every == 0:
            print(f"step {step} {elapsed / 60:.1f} min lr {lr:.2e} loss {np.mean(losses):.3f}", flush=True)
            log.write(json.dumps({"step": step, "minutes": elapsed / 60, "loss": float(np.mean(losses)), "lr": lr}) + "\n")
            log.flush()
            losses = []
        if step % args.eval_every == 0:
            wer, cer, pairs = evaluate(model, loss_fn, dev, table, args.criterion)
            print(f"eval step {step}: dev WER {wer:.1f} CER {cer:.1f} | {pairs[0][1]!r} vs {pairs[0][0]!r}", flush=True)
            log.write(json.dumps({"step": step, "minutes": elapsed / 60, "dev_wer": wer, "dev_cer": cer}) + "\n")
            if cer < best_cer:
                best_cer = cer
                save(args.out / "best.pt")
        if time.time() - last_save > args.checkpoint_minutes * 60:
            save(last)
            last_save = time.time()
    save(last)
    wer, cer, _ = evaluate(model, loss_fn, dev, table, args.criterion)
    print(f"final: dev WER {wer:.1f} CER {cer:.1f}")
    log.write(json.dumps({"step": step, "minutes": elapsed / 60, "dev_wer": wer, "dev_cer": cer, "final": True}) + "\n")
    if cer < best_cer:
        best_cer = cer
        save(args.out / "best.pt")


def _cpu(value: object) -> object:
    """A (nested) state dict with every tensor on the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cpu(v) for v in value]
    return value


def model_config(args: argparse.Namespace, num_tokens: int) -> Wav2LetterConfig:
    """The architecture to train: `--init`'s own unless sizes are given, so a warm start cannot
    silently build a different network and keep only the layers that happen to fit."""
    sizes = {k: v for k, v in (("channels", args.channels), ("kernel", args.kernel), ("depth", args.depth)) if v is not None}
    if args.init is not None and not sizes:
        source = torch.load(args.init, map_location="cpu", weights_only=False)["config"]
        return replace(Wav2LetterConfig.from_json(source), num_tokens=num_tokens)
    return Wav2LetterConfig.small(num_tokens, **sizes)


def initialise_from(model: Wav2Letter, checkpoint: Path, table: TokenTable) -> None:
    """Copy every weight; the scoring layer row by row for tokens both tables share.

    A CTC model localises letters quickly; starting ASG from it skips ASG's slow first phase.
    Any other layer of another shape is an error: a partial copy trains a mostly random network."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    state["model"] = {k: v.float() for k, v in state["model"].items()}
    source_tokens = list(state["tokens"]["tokens"])
    own = model.state_dict()
    heads = ("head.weight", "head.bias")
    misfits = [name for name, value in state["model"].items()
               if name not in heads and (name not in own or own[name].shape != value.shape)]  # fmt: skip
    misfits += [name for name in own if name not in heads and name not in state["model"]]
    if misfits:
        raise SystemExit(f"--init {checkpoint}: its architecture differs from the model being trained "
                         f"({len(misfits)} tensors, e.g. {misfits[0]}); drop --channels/--kernel/--depth to inherit it")
    for name, value in state["model"].items():
        if name not in heads:
            own[name] = value
    for name in ("head.weight", "head.bias"):
        for row, token in enumerate(table.tokens):
            if token in source_tokens:
                own[name][row] = state["model"][name][source_tokens.index(token)]
    model.load_state_dict(own)
    print(f"initialised from {checkpoint} ({sum(t in source_tokens for t in table.tokens)}/{len(table)} output rows)")


def _trainable(clip: Clip, table: TokenTable, config: Wav2LetterConfig) -> bool:
    """Drop clips whose text the table cannot spell or whose frames are too few for the labels."""
    try:
        ids = target_ids(clip.text, table)
    except ValueError:
        return False
    left, right = config.padding()
    frames = config.output_frames(len(clip.audio) + left + right)
    no_doubles = table.repetition_labels == 0 or all(a != b for a, b in zip(ids, ids[1:], strict=False))
    return 0 < len(ids) <= frames and no_doubles


if __name__ == "__main__":
    main()
