"""Training recipe for the Transformer-XL character language model.

    python -m models.train.txl --text data/corpus/lm_train.txt --heldout data/corpus/lm_heldout.txt \
        --out runs/txl --steps 20000

The corpus (one normalised sentence per line) becomes one stream `<eos> s1 <eos> s2 ... <eos>`
(`app.asr.tokens.encode_sentences`, the same encoding the scorer uses), cut into
`batch_size` parallel streams. Consecutive batches continue each stream, and the memory of
one batch is carried into the next: the standard Transformer-XL training, which teaches the
model to use the memory it will get when the server carries it across sentences.

AdamW with linear warm-up and cosine decay, gradient clipping. `OUT/last.pt` (model config,
weights, optimiser, step, stream position and memory) is written every `--checkpoint-every`
steps and at the end; `--resume` continues from it. Loss, and held-out bits per character
with and without carried memory, go to stdout and `OUT/log.jsonl`.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from app.asr.text import normalize_text
from app.asr.tokens import encode_sentences, lm_letters
from models.train.common import learning_rate as common_learning_rate
from models.train.common import resolve_device
from models.transformer_xl import TransformerXL, TransformerXLConfig, checkpoint_model


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping; the architecture lives in `TransformerXLConfig`."""

    steps: int = 20000
    minutes: float = 0.0  # > 0: also a wall-clock budget; the schedule follows whichever runs out first
    batch_size: int = 16
    tgt_len: int = 128  # positions per segment (the model's mem_len is its memory)
    lr: float = 5e-4
    final_lr_ratio: float = 0.02  # cosine decays to lr * final_lr_ratio at `steps`
    warmup: int = 500
    weight_decay: float = 0.01
    clip: float = 0.25
    log_every: int = 50
    eval_every: int = 1000
    checkpoint_every: int = 500
    eval_chars: int = 100_000  # held-out characters scored per evaluation
    seed: int = 0


def default_model_config(vocab_size: int) -> TransformerXLConfig:
    """The small default: 4 layers of 256, about 3M parameters."""
    return TransformerXLConfig(
        vocab_size=vocab_size, d_model=256, n_head=4, d_head=64, d_inner=1024, n_layer=4, mem_len=128
    )


def read_sentences(path: Path) -> list[str]:
    """Normalised non-empty lines of a text file."""
    with path.open(encoding="utf-8") as f:
        return [s for s in (normalize_text(line) for line in f) if s]


def encode_corpus(path: Path) -> Tensor:
    """The file as one LM stream `<eos> s1 <eos> ... <eos>`: uint8 `[N]` (29 symbols fit)."""
    ids = encode_sentences(lm_letters(), read_sentences(path))
    return torch.from_numpy(np.asarray(ids, dtype=np.uint8))


class StreamBatches:
    """`batch_size` parallel streams cut into consecutive segments of `tgt_len`.

    Batch p holds positions `[p * tgt_len, (p+1) * tgt_len)` of every stream, so the memory
    after batch p is exactly the past of batch p+1.
    """

    def __init__(self, data: Tensor, *, batch_size: int, tgt_len: int) -> None:
        per_stream = len(data) // batch_size
        self.streams = data[: per_stream * batch_size].view(batch_size, per_stream).long()  # [B, N/B]
        self.tgt_len = tgt_len
        self.count = (per_stream - 1) // tgt_len  # every input needs its next token as target
        if self.count == 0:
            raise ValueError(f"corpus too small: {len(data)} tokens for {batch_size} streams of {tgt_len} + 1")

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, position: int) -> tuple[Tensor, Tensor]:
        """inputs `[B, tgt_len]`, targets `[B, tgt_len]` (the inputs shifted by one)."""
        start = position * self.tgt_len
        return self.streams[:, start : start + self.tgt_len], self.streams[:, start + 1 : start + 1 + self.tgt_len]


def learning_rate(step: int, config: TrainConfig, elapsed: float = 0.0) -> float:
    """Linear warm-up over `warmup` steps, then cosine from `lr` to `lr * final_lr_ratio`
    (over the steps after the warm-up, or over `minutes` of wall-clock time when that comes first):
    `models.train.common.learning_rate` with the cosine starting when the warm-up ends."""
    progress = 0.0
    if step >= config.warmup:
        progress = (step - config.warmup) / max(1, config.steps - config.warmup)
        if config.minutes > 0:
            progress = max(progress, elapsed / (config.minutes * 60))
    return common_learning_rate(step=step, progress=min(progress, 1.0), lr=config.lr, warmup=config.warmup,
                                final_lr_ratio=config.final_lr_ratio)  # fmt: skip


@torch.no_grad()
def evaluate(model: TransformerXL, batches: StreamBatches, *, carry_mems: bool) -> float:
    """Bits per character over all batches; with `carry_mems` each segment sees the previous ones."""
    was_training = model.training
    model.eval()
    device = model.embedding.weight.device
    total, count = 0.0, 0
    mems: list[Tensor] | None = None
    for position in range(len(batches)):
        inputs, targets = (t.to(device) for t in batches[position])
        logits, new_mems = model(inputs, mems if carry_mems else None)
        mems = new_mems
        total += F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="sum").item()
        count += targets.numel()
    model.train(was_training)
    return total / max(1, count) / math.log(2)


def save_checkpoint(
    path: Path,
    model: TransformerXL,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    step: int = 0,
    position: int = 0,
    mems: list[Tensor] | None = None,
    train_config: TrainConfig | None = None,
) -> None:
    """Write the recipe's checkpoint atomically; `models.transformer_xl.checkpoint_model` reads it."""
    state: dict[str, Any] = {
        "architecture": "transformer_xl",
        "config": asdict(model.config),
        "tokens": lm_letters().to_json(),
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "step": step,
        "position": position,
        "mems": None if mems is None else [m.cpu() for m in mems],
        "train_config": None if train_config is None else asdict(train_config),
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def train(
    text: Path,
    heldout: Path,
    out: Path,
    *,
    model_config: TransformerXLConfig | None = None,
    config: TrainConfig = TrainConfig(),
    resume: bool = False,
    init: Path | None = None,
    device: str | torch.device = "cpu",
    echo: Callable[[str], None] = print,
) -> TransformerXL:
    """Train (or continue) a model in `out`; returns it. `model_config` is ignored when resuming.

    `init`: start from that checkpoint's weights and architecture (a fresh optimiser and
    schedule), with `model_config`'s dropout: how a model is carried on to new text.
    """
    out.mkdir(parents=True, exist_ok=True)
    last = out / "last.pt"
    table = lm_letters()
    state: dict[str, Any] | None = None
    torch.manual_seed(config.seed)  # the initial weights depend on the seed only
    if resume and last.exists():
        state = torch.load(last, map_location="cpu", weights_only=True)
        model = checkpoint_model(state)
    elif init is not None:
        start = torch.load(init, map_location="cpu", weights_only=True)
        dropout = (model_config or default_model_config(len(table))).dropout
        model = checkpoint_model(start | {"config": start["config"] | {"dropout": dropout}})
        echo(f"initialised from {init} (dropout {dropout})")
    else:
        if resume:
            echo(f"no checkpoint at {last}; starting from scratch")
        model = TransformerXL.from_config(model_config or default_model_config(len(table)))
    if model.config.vocab_size != len(table):
        raise ValueError(f"model vocabulary {model.config.vocab_size} != LM token table {len(table)}")
    model.to(device).train()

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or "embedding" in n]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr, betas=(0.9, 0.98),
    )  # fmt: skip
    step, position, mems = 0, 0, None
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        step, position = state["step"], state["position"]
        mems = None if state["mems"] is None else [m.to(device) for m in state["mems"]]
        echo(f"resumed from {last} at step {step}")

    batches = StreamBatches(encode_corpus(text), batch_size=config.batch_size, tgt_len=config.tgt_len)
    held = encode_corpus(heldout)[: config.eval_chars + 1]
    eval_batches = StreamBatches(
        held, batch_size=min(config.batch_size, max(1, len(held) // (config.tgt_len + 1))), tgt_len=config.tgt_len
    )
    parameters = sum(p.numel() for p in model.parameters())
    echo(
        f"{parameters / 1e6:.2f}M parameters; {len(batches)} batches per epoch of {config.batch_size}x{config.tgt_len}"
    )

    with (out / "log.jsonl").open("a") as log:

        def record(entry: dict[str, Any], line: str) -> None:
            echo(line)
            log.write(json.dumps(entry) + "\n")
            log.flush()

        best = math.inf

        def run_eval() -> None:
            nonlocal best
            with_mems = evaluate(model, eval_batches, carry_mems=True)
            without = evaluate(model, eval_batches, carry_mems=False)
            record({"step": step, "heldout_bpc": with_mems, "heldout_bpc_no_mems": without},
                   f"eval step {step}: held-out bpc {with_mems:.4f} with memory, {without:.4f} without")  # fmt: skip
            if with_mems < best:  # a long run can overfit the small text corpus: keep the best held-out model
                best = with_mems
                save_checkpoint(out / "best.pt", model, step=step, train_config=config)

        torch.manual_seed(config.seed + step)
        losses: list[float] = []
        started, chars = time.time(), 0
        run_started = time.time()
        while step < config.steps and not (config.minutes > 0 and time.time() - run_started >= config.minutes * 60):
            if position >= len(batches):  # a new epoch starts the streams over, without memory
                position, mems = 0, None
            inputs, targets = (t.to(device) for t in batches[position])
            lr = learning_rate(step, config, time.time() - run_started)
            for group in optimizer.param_groups:
                group["lr"] = lr
            logits, mems = model(inputs, mems)  # mems come back detached
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            optimizer.step()
            step, position = step + 1, position + 1
            losses.append(loss.item())
            chars += targets.numel()
            if step % config.log_every == 0 or step == config.steps:
                mean = float(np.mean(losses))
                speed = chars / max(1e-9, time.time() - started)
                record({"step": step, "loss": mean, "bpc": mean / math.log(2), "lr": lr, "chars_per_s": speed},
                       f"step {step} loss {mean:.4f} bpc {mean / math.log(2):.4f} lr {lr:.2e} {speed:.0f} chars/s")  # fmt: skip
                losses, started, chars = [], time.time(), 0
            if step % config.eval_every == 0 and step < config.steps:
                run_eval()
            if step % config.checkpoint_every == 0 or step == config.steps:
                save_checkpoint(last, model, optimizer, step=step, position=position, mems=mems, train_config=config)
        save_checkpoint(last, model, optimizer, step=step, position=position, mems=mems, train_config=config)
        run_eval()
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", type=Path, required=True, help="training sentences, one per line")
    parser.add_argument("--heldout", type=Path, required=True, help="held-out sentences, one per line")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt (its model config wins)")
    parser.add_argument("--init", type=Path, help="start from this checkpoint's weights and architecture (e.g. from export.txl_recover)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        parser.add_argument(
            "--" + f.name.replace("_", "-"), type=type(getattr(defaults, f.name)), default=getattr(defaults, f.name)
        )
    model_defaults = default_model_config(len(lm_letters()))
    for name in ("d_model", "n_head", "d_head", "d_inner", "n_layer", "mem_len", "dropout"):
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=type(getattr(model_defaults, name)),
            default=getattr(model_defaults, name),
        )
    parser.add_argument("--no-tie-weights", action="store_true", help="separate input embedding and output layer")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    model_config = TransformerXLConfig(
        vocab_size=len(lm_letters()), d_model=args.d_model, n_head=args.n_head, d_head=args.d_head, d_inner=args.d_inner,
        n_layer=args.n_layer, mem_len=args.mem_len, dropout=args.dropout, tie_weights=not args.no_tie_weights,
    )  # fmt: skip
    train(
        args.text, args.heldout, args.out, model_config=model_config, config=config, resume=args.resume, init=args.init,
        device=device,
    )


if __name__ == "__main__":
    main()
