"""CTC fine-tuning of a pretrained Whisper encoder's top layers on two CPU cores.

    python -m models.train.whisper_ctc --init MODEL.bin --train A.jsonl B.jsonl ... \
        --dev data/real_more/dev.jsonl data/test_an4.jsonl --watch ../shared/data/real_dev_lj/manifest.jsonl \
        --out runs/whisper-ctc --freeze 4 --minutes 100 [--resume]

Why the recipe looks like this: the lower layers of Whisper's encoder already hear people; what
CTC needs is the top of the stack re-aimed at letters. The lower `--freeze` layers are run once per
clip (clip alone, no 30 s padding, as the server runs them) and their outputs are kept in fp16 in
`OUT/cache/`, so an epoch costs only the trained layers. SpecAugment then works on those hidden
states: time masks filled with the clip's mean state and a per-clip channel dropout, since the
log-mel is behind the frozen layers. With `--augment` the training clips are not cached: each batch
is augmented as a waveform (speed, vocal-tract warp, reverberation, noise, telephone band, gain; the
Wav2Letter recipe's `models.train.augment`) in loader processes, and the stem and frozen layers run
on it forward only, what a GPU run with the whole encoder unfrozen (`--freeze 0`) needs too.

The run is resumable (`OUT/last.pt`: trained weights, optimizer, step, clock) and keeps the best
checkpoint by the mean greedy WER of the `--dev` sets (`OUT/best.pt`, the trained layers only, fp16:
the frozen ones come back from `--init`). `--watch` sets are scored in the log but never choose.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.asr.decoders.greedy import ctc_segments
from app.asr.metrics import error_rates
from app.asr.tokens import TokenTable, ctc_letters
from models.train.augment import AugmentConfig
from models.train.common import learning_rate, resolve_device, run_finished, schedule_progress
from models.train.data import Clip, batch_stream, length_batches, load_clips
from models.whisper_ct2 import load_whisper_ctc
from models.whisper_ctc import WhisperCTC, WhisperCTCConfig

CACHE_SHARD = 256  # clips per cache file


@dataclass(frozen=True)
class TrainConfig:
    freeze: int = 4  # encoder layers run once and cached (the stem always is)
    minutes: float = 100.0
    max_steps: int = 0
    lr: float = 1.5e-4  # trained encoder layers
    head_lr: float = 1e-3  # the CTC projection (fresh)
    weight_decay: float = 0.01
    warmup: int = 150
    final_lr_ratio: float = 0.05
    batch_seconds: float = 160.0
    max_batch: int = 48
    clip: float = 5.0
    time_masks: int = 2
    time_mask_ratio: float = 0.08  # each time mask covers at most this share of the clip's frames
    channel_dropout: float = 0.1
    dropout: float = 0.1  # on the cached states entering the trained layers
    eval_minutes: float = 12.0
    checkpoint_minutes: float = 5.0
    log_every: int = 10
    seed: int = 0
    # dual-mode (WeNet's dynamic chunk training, one chunk size): a share of the batches runs with the
    # block mask that exact chunked streaming uses, the rest with full attention for files
    chunk_frames: int = 0  # 0: full attention only
    left_chunks: int = 8
    chunk_share: float = 0.5
    # waveform augmentation (models.train.augment: speed, vocal-tract warp, reverberation, noise, telephone band,
    # gain): the training clips are not cached; the stem and the frozen layers run on each augmented batch
    # (forward only), so a step costs about a fifth more on the CPU with two frozen layers
    augment: bool = False
    augment_workers: int = 1  # loader processes that augment (0: in the training process)


# --- the cache of frozen-layer outputs ----------------------------------------------------------------------------------
def cache_key(init: Path, freeze: int, clips: Sequence[Clip], mode: str = "") -> str:
    """`mode` names what else shapes the frozen states (the mel floor, the block mask); "" for the first recipe."""
    digest = hashlib.sha1(f"{Path(init).resolve()}|{Path(init).stat().st_size}|{freeze}{mode}".encode())
    for c in clips:
        digest.update(c.text.encode())
        digest.update(len(c.audio).to_bytes(8, "little"))
    return digest.hexdigest()[:16]


@torch.no_grad()
def frozen_states(model: WhisperCTC, clips: Sequence[Clip], freeze: int, directory: Path, *, chunked: bool = False,
                  echo: Callable[[str], None] = print) -> list[torch.Tensor]:  # fmt: skip
    """Each clip's hidden states after the first `freeze` layers, `[T, D]` fp16, computed once and
    kept in shards under `directory` (so a resumed run, or a crash mid-way, recomputes nothing done)."""
    directory.mkdir(parents=True, exist_ok=True)
    model.eval()
    states: list[torch.Tensor] = []
    started = time.time()
    for shard_start in range(0, len(clips), CACHE_SHARD):
        path = directory / f"{shard_start // CACHE_SHARD:05d}.pt"
        shard = clips[shard_start : shard_start + CACHE_SHARD]
        if path.is_file():
            states += torch.load(path, weights_only=True)
            continue
        out = [frozen_batch(model, [clip.audio.astype(np.float32) / 32768.0], freeze, chunked=chunked)[0][0].to(torch.float16) for clip in shard]
        torch.save(out, path)
        states += out
        done = shard_start + len(shard)
        echo(f"cached {done}/{len(clips)} clips ({(time.time() - started) / 60:.1f} min)")
    return states


# --- batches ---------------------------------------------------------------------------------------------------------
def spec_augment(x: torch.Tensor, lengths: torch.Tensor, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """Time masks (the clip's mean state) and channel dropout on hidden states `[B, T, D]`."""
    b, t, d = x.shape
    x = x.clone()
    for row in range(b):
        n = int(lengths[row])
        mean = x[row, :n].mean(0)
        for _ in range(config.time_masks):
            width = int(torch.randint(0, max(1, int(n * config.time_mask_ratio)) + 1, (1,), generator=generator))
            if width and n > width:
                start = int(torch.randint(0, n - width, (1,), generator=generator))
                x[row, start : start + width] = mean
    if config.channel_dropout > 0:
        keep = (torch.rand(b, 1, d, generator=generator) >= config.channel_dropout).to(device=x.device, dtype=x.dtype)
        x = x * keep / (1 - config.channel_dropout)
    return x


@torch.no_grad()
def frozen_batch(model: WhisperCTC, waves: Sequence[np.ndarray], freeze: int, *, chunked: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The hidden states after the first `freeze` layers of a batch of (augmented) waveforms, `[B, T, D]`,
    and each row's frames: what the cache holds for clean clips, computed on the fly. The front end and
    the stem run per clip, so each clip's last frames see its own edge padding (not the batch's zeros),
    as the server and the cache compute them; the frozen layers run on the padded batch."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    stems = [model.stem(model.frontend(torch.from_numpy(np.asarray(w, dtype=np.float32))[None].to(device)))[0] for w in waves]
    frames = torch.tensor([s.shape[0] for s in stems])
    x = torch.zeros(len(stems), int(frames.max()), stems[0].shape[1], device=device)
    for row, s in enumerate(stems):
        x[row, : s.shape[0]] = s
    x = model.encode(x, frames.to(device), stop=freeze, chunked=chunked)
    model.train(was_training)
    return x.float(), frames


def pad_states(states: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([s.shape[0] for s in states])
    batch = torch.zeros(len(states), int(lengths.max()), states[0].shape[1])
    for row, s in enumerate(states):
        batch[row, : s.shape[0]] = s.float()
    return batch, lengths


def fits(text: str, frames: int, table: TokenTable) -> bool:
    """The table spells it and its frames hold the labels, a blank between repeats."""
    try:
        ids = table.encode(text)
    except ValueError:
        return False
    repeats = sum(a == b for a, b in zip(ids, ids[1:], strict=False))
    return 0 < len(ids) and len(ids) + repeats <= frames


# --- evaluation ------------------------------------------------------------------------------------------------------
@torch.no_grad()
def greedy_wer(model: WhisperCTC, states: Sequence[torch.Tensor], texts: Sequence[str], freeze: int, table: TokenTable, *,
               chunked: bool = False) -> tuple[float, float]:  # fmt: skip
    was_training = model.training
    model.eval()
    pairs = []
    order = np.argsort([s.shape[0] for s in states])
    for start in range(0, len(order), 16):
        idx = order[start : start + 16]
        x, lengths = pad_states([states[i] for i in idx])
        device = next(model.parameters()).device
        best = model.logits(model.encode(x.to(device), lengths.to(device), start=freeze, chunked=chunked)).argmax(-1).cpu().numpy()
        for row, i in enumerate(idx):
            hyp = table.decode([tok for tok, _ in ctc_segments(best[row, : int(lengths[row])], table.blank_id)])
            pairs.append((texts[i], hyp))
    model.train(was_training)
    return error_rates(pairs)


# --- checkpoints -----------------------------------------------------------------------------------------------------
def pack_init(model: WhisperCTC, path: Path, *, int8_blocks: bool = True) -> None:
    """Write a whole model (stem, every block, head) as one `--init` file small enough to travel to a GPU
    machine, where Whisper's 145 MB model.bin does not fit the transfer limit: float16, and with
    `int8_blocks` each block matrix as int8 per row with a float32 scale (21.4 MiB for base; the
    rounding is fine-tuned away when every block trains). The stem and positions stay float16, exactly
    Whisper's values, so a checkpoint trained from this file loads back over the original model.bin."""
    state: dict[str, Any] = {}
    for name, value in model.state_dict().items():
        if int8_blocks and name.startswith("blocks.") and value.dim() == 2:
            scale = value.abs().amax(dim=1).clamp(min=1e-12) / 127
            state[name] = {"q": torch.round(value / scale[:, None]).to(torch.int8), "scale": scale.float()}
        else:
            state[name] = value.half()
    torch.save({"model_config": model.config.to_json(), "model": state, "packed_init": True}, path)


def is_packed(init: Path) -> bool:
    """A `pack_init` file (a whole model, head included) rather than Whisper's model.bin."""
    return Path(init).suffix == ".pt"


def load_init(init: Path, **overrides: Any) -> WhisperCTC:
    """`--init`: Whisper's CTranslate2 model.bin (a fresh head), or a whole model written by `pack_init`,
    whose saved configuration the run's flags (`overrides`: chunking, mel floor) replace; its head keeps its tokens."""
    if not is_packed(init):
        return load_whisper_ctc(init, **overrides)
    saved = torch.load(init, map_location="cpu", weights_only=False)
    model = WhisperCTC(WhisperCTCConfig(**{**saved["model_config"], **{k: v for k, v in overrides.items() if k != "n_tokens"}}))
    state = {k: (v["q"].float() * v["scale"].float()[:, None] if isinstance(v, dict) else v.float()) for k, v in saved["model"].items()}
    model.load_state_dict(state)
    return model


def trained_state(model: WhisperCTC, freeze: int) -> dict[str, torch.Tensor]:
    """The parameters this recipe changes: blocks from `freeze` on, the final LayerNorm and the head."""
    return {k: v for k, v in model.state_dict().items() if k.startswith(("ln_post.", "head.")) or (k.startswith("blocks.") and int(k.split(".")[1]) >= freeze)}


def load_checkpoint(path: Path, init: Path | None = None) -> WhisperCTC:
    """A `WhisperCTC` from a checkpoint of this recipe: `init` (or the one it names) gives the frozen layers."""
    saved = torch.load(path, map_location="cpu", weights_only=False)
    config = WhisperCTCConfig(**saved["model_config"])
    init = Path(init or saved["init"])
    model = load_init(init, **{k: v for k, v in asdict(config).items() if k not in ("n_mels", "d_model", "n_heads", "max_frames")})  # fmt: skip
    model.load_state_dict({k: v.float() for k, v in saved["model"].items()}, strict=False)
    return model.eval()


# --- the run ---------------------------------------------------------------------------------------------------------
def finetune(train: Sequence[Clip], dev: dict[str, Sequence[Clip]], out: Path, *, init: Path, config: TrainConfig, watch: dict[str, Sequence[Clip]] | None = None,
             resume: bool = False, start: Path | None = None, device: str = "cpu", mel_floor: float | None = None,
             echo: Callable[[str], None] = print) -> WhisperCTC:  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    table = ctc_letters()
    last_path, best_path = out / "last.pt", out / "best.pt"
    saved: dict[str, Any] | None = None
    if resume and last_path.is_file():
        saved = torch.load(last_path, map_location="cpu", weights_only=False)
        config = TrainConfig(**{**asdict(config), **{k: saved["config"][k] for k in ("freeze", "chunk_frames", "left_chunks") if k in saved["config"]}})
        mel_floor = saved["model_config"].get("mel_floor")
    model = load_init(init, n_tokens=len(table), chunk_frames=config.chunk_frames, left_chunks=config.left_chunks if config.chunk_frames else 0,
                      mel_floor=mel_floor)  # fmt: skip
    torch.manual_seed(config.seed)
    if not is_packed(init):  # a packed whole model brings its trained head
        torch.nn.init.normal_(model.head.weight, std=0.02)
        torch.nn.init.zeros_(model.head.bias)
        with torch.no_grad():
            model.head.bias[table.blank_id] = 2.0  # CTC starts near all-blank, as trained models end
    if saved is not None:
        model.load_state_dict(saved["model"], strict=False)
    elif start is not None:  # a new run from an earlier run's weights (e.g. the shipped models/checkpoints/whisper-ctc-base.fp16.pt)
        model.load_state_dict({k: v.float() for k, v in torch.load(start, map_location="cpu", weights_only=False)["model"].items()}, strict=False)
        echo(f"starting from the weights of {start}")
    freeze = config.freeze
    for name, param in model.named_parameters():
        param.requires_grad = name in trained_state(model, freeze)

    watch = watch or {}
    sets = {"train": list(train), **{f"dev:{k}": list(v) for k, v in dev.items()}, **{f"watch:{k}": list(v) for k, v in watch.items()}}
    modes = [False, True] if config.chunk_frames else [False]  # full attention, then the block mask
    cached: dict[bool, dict[str, list[torch.Tensor]]] = {}
    for chunked in modes:
        cached[chunked] = {}
        mode = (f"|floor{mel_floor}" if mel_floor is not None else "") + (f"|chunk{config.chunk_frames}x{config.left_chunks}" if chunked else "")
        for name, clips in sets.items():
            if name == "train" and config.augment:  # augmented clips are never the same twice
                continue
            unique = list({id(c.audio): c for c in clips}.values())  # a manifest listed twice shares its arrays
            key = cache_key(init, freeze, unique, mode)
            states = frozen_states(model, unique, freeze, out / "cache" / f"{name.replace(':', '-')}-{key}", chunked=chunked, echo=echo)
            by_audio = {id(c.audio): s for c, s in zip(unique, states, strict=True)}
            cached[chunked][name] = [by_audio[id(c.audio)] for c in clips]
    full = cached[False]
    if config.augment:
        train_frames = [int(model.output_frames(len(c.audio))) for c in sets["train"]]
    else:
        train_frames = [s.shape[0] for s in full["train"]]
    train_idx = [i for i, c in enumerate(sets["train"]) if fits(c.text, train_frames[i], table)]
    seconds = sum(len(sets["train"][i].audio) for i in train_idx) / 16000
    echo(f"{len(train_idx)} training clips ({seconds / 3600:.2f} h, {len(train) - len(train_idx)} dropped); "
         f"training {sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6:.2f}M of {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")  # fmt: skip

    device_ = resolve_device(device)
    model.to(device_).train()
    # the fresh head learns faster than the pretrained layers; weight decay on matrices only
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in trained if not n.startswith("head.") and p.dim() >= 2], "weight_decay": config.weight_decay, "base_lr": config.lr},
        {"params": [p for n, p in trained if not n.startswith("head.") and p.dim() < 2], "weight_decay": 0.0, "base_lr": config.lr},
        {"params": [p for n, p in trained if n.startswith("head.")], "weight_decay": 0.0, "base_lr": config.head_lr},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.98), eps=1e-6)
    step, elapsed, best = 0, 0.0, math.inf
    if saved is not None:
        optimizer.load_state_dict(saved["optimizer"])
        step, elapsed, best = saved["step"], saved["elapsed"], saved["best"]
        echo(f"resumed from {last_path} at step {step}, {elapsed / 60:.1f} min")
    generator = torch.Generator().manual_seed(config.seed + step)
    rng = np.random.default_rng(config.seed + step)
    if not config.augment:
        lengths = [train_frames[i] for i in train_idx]
        batches = length_batches(lengths, max_samples=int(config.batch_seconds * 50), rng=rng, max_batch=config.max_batch)
    else:  # the same length buckets, over waveforms, augmented in loader processes
        waves = batch_stream([sets["train"][i] for i in train_idx], batch_seconds=config.batch_seconds, max_batch=config.max_batch,
                             augment=AugmentConfig(), seed=config.seed + step, workers=config.augment_workers)
    dropout = torch.nn.Dropout(config.dropout)
    ctc = torch.nn.CTCLoss(blank=table.blank_id, zero_infinity=True)

    def checkpoint(path: Path, *, full: bool) -> None:
        data = {"model": {k: (v if full else v.half()) for k, v in trained_state(model, freeze).items()}, "model_config": model.config.to_json(),
                "init": str(init), "config": asdict(config), "step": step, "elapsed": elapsed, "best": best}  # fmt: skip
        if full:
            data["optimizer"] = optimizer.state_dict()
        tmp = path.with_suffix(".tmp")
        torch.save(data, tmp)
        tmp.replace(path)

    with (out / "log.jsonl").open("a") as log:

        def record(entry: dict[str, Any], line: str) -> None:
            echo(line)
            log.write(json.dumps(entry) + "\n")
            log.flush()

        def run_eval() -> None:
            nonlocal best
            entry: dict[str, Any] = {"step": step, "minutes": round(elapsed / 60, 2)}
            for chunked in modes:
                for name, clips in sets.items():
                    if name != "train":
                        wer, cer = greedy_wer(model, cached[chunked][name], [c.text for c in clips], freeze, table, chunked=chunked)
                        entry[("chunked:" if chunked else "") + name] = {"wer": round(wer, 2), "cer": round(cer, 2)}
            # both modes choose: files use full attention, streams the block mask
            score = float(np.mean([entry[f"{m}dev:{k}"]["wer"] for k in dev for m in ("", "chunked:")[: len(modes)]])) if dev else -step
            entry["score"] = round(score, 3)
            record(entry, "eval " + json.dumps(entry))
            if score < best:
                best = score
                checkpoint(best_path, full=False)

        started = time.time() - elapsed
        last_save, last_eval = time.time(), time.time()
        losses: list[float] = []
        lr = config.lr
        while not run_finished(step=step, elapsed=elapsed, minutes=config.minutes, max_steps=config.max_steps):
            chunked = bool(config.chunk_frames) and bool(torch.rand((), generator=generator) < config.chunk_share)
            if config.augment:
                rows, batch = next(waves)
                idx = [train_idx[i] for i in rows]
                x, frames = frozen_batch(model, batch, freeze, chunked=chunked)
            else:
                idx = [train_idx[i] for i in next(batches)]
                x, frames = pad_states([cached[chunked]["train"][i] for i in idx])
            x = dropout(spec_augment(x, frames, config, generator)).to(device_)
            labels = [torch.tensor(table.encode(sets["train"][i].text)) for i in idx]
            progress = schedule_progress(step=step, elapsed=elapsed, minutes=config.minutes, max_steps=config.max_steps)
            scale = learning_rate(step=step, progress=progress, lr=1.0, warmup=config.warmup, final_lr_ratio=config.final_lr_ratio)
            lr = config.lr * scale
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * scale
            logp = torch.log_softmax(model.logits(model.encode(x, frames.to(device_), start=freeze, chunked=chunked)), dim=-1)
            loss = ctc(logp.transpose(0, 1), torch.cat(labels).to(device_), frames.to(device_), torch.tensor([len(t) for t in labels], device=device_))
            optimizer.zero_grad(set_to_none=True)
            if torch.isfinite(loss):
                loss.backward()
                torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], config.clip)
                optimizer.step()
                losses.append(loss.item())
            step += 1
            elapsed = time.time() - started
            if step % config.log_every == 0 and losses:
                record({"step": step, "minutes": round(elapsed / 60, 2), "loss": float(np.mean(losses)), "lr": lr},
                       f"step {step} {elapsed / 60:.1f} min lr {lr:.2e} loss {np.mean(losses):.3f}")  # fmt: skip
                losses = []
            if time.time() - last_eval > config.eval_minutes * 60:
                run_eval()
                last_eval = time.time()
            if time.time() - last_save > config.checkpoint_minutes * 60:
                checkpoint(last_path, full=True)
                last_save = time.time()
        checkpoint(last_path, full=True)
        run_eval()
    return model.eval()


# --- command line ----------------------------------------------------------------------------------------------------
def set_name(path: Path) -> str:
    """`data/test_an4.jsonl` -> test_an4; `data/kokoro/dev.jsonl` -> kokoro; `real_dev_lj/manifest.jsonl` -> real_dev_lj."""
    return path.parent.name if path.stem in ("manifest", "dev", "train", "test") else path.stem


def read_sets(paths: Sequence[Path], *, max_seconds: float, workers: int) -> dict[str, list[Clip]]:
    return {set_name(path): load_clips([path], max_seconds=max_seconds, workers=workers) for path in paths}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m models.train.whisper_ctc", description=__doc__.splitlines()[0])
    parser.add_argument("--init", type=Path, required=True, help="CTranslate2 Whisper model.bin (the pretrained encoder)")
    parser.add_argument("--train", type=Path, nargs="+", required=True, help="JSONL manifests of {audio, text}; list one twice to weight it")
    parser.add_argument("--dev", type=Path, nargs="*", default=[], help="manifests whose mean greedy WER chooses the best checkpoint")
    parser.add_argument("--watch", type=Path, nargs="*", default=[], help="manifests scored in the log only")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument("--start", type=Path, help="a new run from the trained layers of a best.pt (fresh optimizer and schedule)")
    parser.add_argument("--device", default="cpu", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--load-workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="only the first N clips of each training manifest (smoke runs)")
    parser.add_argument("--max-seconds", type=float, default=29.9, help="drop longer clips (the positional table holds just under 30 s)")
    parser.add_argument("--mel-floor", type=float, default=None, help="a fixed log10 floor for the log-mel instead of peak - 8 (streamable models)")
    for name, value in asdict(TrainConfig()).items():
        if isinstance(value, bool):
            parser.add_argument("--" + name.replace("_", "-"), action=argparse.BooleanOptionalAction, default=value)
        else:
            parser.add_argument("--" + name.replace("_", "-"), type=type(value), default=value)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    config = TrainConfig(**{name: getattr(args, name) for name in asdict(TrainConfig())})
    train = load_clips(list(args.train), max_seconds=args.max_seconds, limit=args.limit, workers=args.load_workers)
    dev = read_sets(args.dev, max_seconds=args.max_seconds, workers=args.load_workers)
    watch = read_sets(args.watch, max_seconds=args.max_seconds, workers=args.load_workers)
    finetune(train, dev, args.out, init=args.init, config=config, watch=watch, resume=args.resume, start=args.start, device=args.device,
             mel_floor=args.mel_floor)  # fmt: skip


if __name__ == "__main__":
    main()
