"""Self-supervised wav2vec 2.0 pretraining (Baevski et al. 2020) with Hugging Face `Wav2Vec2ForPreTraining`.

    python -m models.train.wav2vec2 pretrain --train data/corpus/train.jsonl --out runs/w2v2-pre --minutes 120

Spans of the feature-encoder output are masked (`_compute_mask_indices`: each frame starts
a span of `mask_time_length` frames with probability `mask_time_prob / mask_time_length`,
inside each utterance's valid frames); the transformer must pick, at each masked frame,
the Gumbel-softmax quantized target of that frame among `num_negatives` distractors drawn
from other masked frames of the same utterance (`_sample_negative_indices`). The loss is
the paper's: contrastive loss plus `diversity_loss_weight` times the diversity loss (which
pushes the quantizer to use all its codevectors), as the model computes it, divided by the
number of masked frames (as in Hugging Face's `run_wav2vec2_pretraining_no_trainer.py`).
The Gumbel temperature decays from `max_gumbel_temperature` to `min_gumbel_temperature`.

`OUT/last` is a `save_pretrained` directory (with the feature extractor config) that
`finetune --init OUT/last` starts from; `OUT/last/trainer_state.pt` serves `--resume`.
Loss, both terms and the codevector perplexity go to stdout and `OUT/log.jsonl`.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from transformers import Wav2Vec2ForPreTraining
from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices, _sample_negative_indices

from models.train.common import (
    STATE_FILE,
    adamw,
    learning_rate,
    quiet_transformers,
    run_finished,
    save_directory,
    schedule_progress,
)
from models.train.data import length_batches, load_audio
from models.train.manifest import read_manifest
from models.wav2vec2 import (
    build_feature_extractor,
    count_parameters,
    output_frames,
    project_tokens,
    small_config,
    waveform_batch,
)


@dataclass(frozen=True)
class PretrainConfig:
    """Optimisation, masking and bookkeeping; the architecture lives in the `Wav2Vec2Config`."""

    minutes: float = 120.0
    max_steps: int = 0  # 0: no limit; otherwise the schedule ends at whichever comes first
    batch_seconds: float = 100.0
    max_batch: int = 32
    lr: float = 5e-4
    final_lr_ratio: float = 0.02
    warmup: int = 1000
    weight_decay: float = 0.01
    clip: float = 10.0
    mask_time_prob: float = 0.65
    mask_time_length: int = 10
    max_gumbel_temperature: float = 2.0
    min_gumbel_temperature: float = 0.5
    gumbel_temperature_decay: float = 0.999995
    log_every: int = 25
    checkpoint_minutes: float = 5.0
    seed: int = 0


class PretrainLoss(NamedTuple):
    loss: torch.Tensor  # contrastive + weight * diversity, per masked frame (what is optimised)
    contrastive: float  # per masked frame
    diversity: float  # (G*V - perplexity) / (G*V)
    perplexity: float
    masked: int


def load_waves(paths: Sequence[Path], *, max_seconds: float = 20.0, limit: int | None = None, sample_rate: int = 16000) -> list[np.ndarray]:
    """int16 waveforms of the manifests' `audio` entries (a `text` is not needed)."""
    rows = [row for path in paths for row in read_manifest(path)][:limit]
    waves = []
    for row in rows:
        wave = load_audio(row["audio"], sample_rate)
        if 0 < len(wave) <= max_seconds * sample_rate:
            waves.append(np.clip(wave * 32767, -32768, 32767).astype(np.int16))
    return waves


def pretraining_loss(model: Wav2Vec2ForPreTraining, waves: Sequence[np.ndarray], *, mask_time_prob: float, mask_time_length: int,
                     rng: np.random.Generator) -> PretrainLoss:
    """One forward pass with sampled masks and distractors; `waves` float32 `[N_i]`."""
    device = next(model.parameters()).device
    values, mask = waveform_batch(waves)
    frames = model._get_feat_extract_output_lengths(values.shape[1])
    frames = int(frames.item()) if isinstance(frames, torch.Tensor) else int(frames)
    sub_mask = model._get_feature_vector_attention_mask(frames, mask)  # type: ignore[arg-type]  # [B, T] valid frames
    np.random.seed(int(rng.integers(2**31)))  # both samplers draw from NumPy's global generator
    mask_time = _compute_mask_indices((len(waves), frames), mask_time_prob, mask_time_length, attention_mask=sub_mask, min_masks=2)
    negatives = _sample_negative_indices((len(waves), frames), model.config.num_negatives, mask_time_indices=mask_time)
    mask_time_t = torch.from_numpy(mask_time).to(device=device, dtype=torch.long)
    output = model(values.to(device), attention_mask=mask.to(device), mask_time_indices=mask_time_t,
                   sampled_negative_indices=torch.from_numpy(negatives).to(device=device, dtype=torch.long))  # fmt: skip
    masked = int(mask_time.sum())
    return PretrainLoss(output.loss / masked, output.contrastive_loss.item() / masked, output.diversity_loss.item() / masked,
                        output.codevector_perplexity.item(), masked)  # fmt: skip


def gumbel_temperature(step: int, config: PretrainConfig) -> float:
    return max(config.max_gumbel_temperature * config.gumbel_temperature_decay**step, config.min_gumbel_temperature)


def pretrain(waves: Sequence[np.ndarray], out: Path, *, config: PretrainConfig = PretrainConfig(), model_config: Any = None,
             resume: bool = False, device: str | torch.device = "cpu", echo: Callable[[str], None] = print) -> Wav2Vec2ForPreTraining:
    """Pretrain on int16 (or float) waveforms in `out`, or continue the run there; returns the model."""
    out.mkdir(parents=True, exist_ok=True)
    last, state_path = out / "last", out / "last" / STATE_FILE
    quiet_transformers()
    state: dict[str, Any] | None = None
    torch.manual_seed(config.seed)  # the initial weights
    if resume and state_path.is_file():
        model = Wav2Vec2ForPreTraining.from_pretrained(str(last))  # type: ignore[arg-type]
        state = torch.load(state_path, map_location="cpu", weights_only=False)
    else:
        if resume:
            echo(f"no checkpoint at {last}; starting afresh")
        model_config = model_config or small_config(len(project_tokens()))
        if model_config.mask_time_prob <= 0:  # the learned mask embedding exists only then; spans come from `config`
            model_config = copy.deepcopy(model_config)
            model_config.mask_time_prob = 0.05
        model = Wav2Vec2ForPreTraining(model_config)
    model.to(device).train()  # type: ignore[arg-type]
    optimizer = adamw(model, lr=config.lr, weight_decay=config.weight_decay)
    step, elapsed = 0, 0.0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed = state["step"], state["elapsed"]
        echo(f"resumed from {last} at step {step}, {elapsed / 60:.1f} min")

    # Every utterance needs room for a masked span and a distractor besides it.
    shortest = 2 * config.mask_time_length
    usable = [w for w in waves if output_frames(model.config, len(w)) >= shortest]
    if not usable:
        raise ValueError(f"no waveform gives the {shortest} frames a masked span needs")
    echo(f"{len(usable)} waveforms ({sum(len(w) for w in usable) / 16000 / 3600:.2f} h, {len(waves) - len(usable)} too short); "
         f"{count_parameters(model) / 1e6:.2f}M parameters")  # fmt: skip
    rng = np.random.default_rng(config.seed + step)
    torch.manual_seed(config.seed + step)
    batches = length_batches([len(w) for w in usable], max_samples=int(config.batch_seconds * 16000), rng=rng, max_batch=config.max_batch)
    feature_extractor = build_feature_extractor()

    def save(directory: Path) -> None:
        def write(tmp: Path) -> None:
            model.save_pretrained(str(tmp))
            feature_extractor.save_pretrained(str(tmp))
            torch.save({"optimizer": optimizer.state_dict(), "step": step, "elapsed": elapsed, "config": asdict(config)}, tmp / STATE_FILE)

        save_directory(directory, write)

    with (out / "log.jsonl").open("a") as log:
        started, last_save = time.time() - elapsed, time.time()
        window: list[tuple[float, float, float, float]] = []  # loss, contrastive, diversity, perplexity
        while not run_finished(step=step, elapsed=elapsed, minutes=config.minutes, max_steps=config.max_steps):
            batch = [usable[i].astype(np.float32) / (32768.0 if usable[i].dtype == np.int16 else 1.0) for i in next(batches)]
            progress = schedule_progress(step=step, elapsed=elapsed, minutes=config.minutes, max_steps=config.max_steps)
            lr = learning_rate(step=step, progress=progress, lr=config.lr, warmup=config.warmup, final_lr_ratio=config.final_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr
            model.set_gumbel_temperature(gumbel_temperature(step, config))  # type: ignore[arg-type]  # annotated int, is a float
            result = pretraining_loss(model, batch, mask_time_prob=config.mask_time_prob, mask_time_length=config.mask_time_length, rng=rng)
            optimizer.zero_grad(set_to_none=True)
            if torch.isfinite(result.loss):
                result.loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
                optimizer.step()
                window.append((result.loss.item(), result.contrastive, result.diversity, result.perplexity))
            step += 1
            elapsed = time.time() - started
            if window and (step % config.log_every == 0 or run_finished(step=step, elapsed=elapsed, minutes=config.minutes, max_steps=config.max_steps)):
                means = np.mean(window, axis=0)
                entry = {"step": step, "minutes": elapsed / 60, "lr": lr, "gumbel_temperature": gumbel_temperature(step - 1, config),
                         "loss": float(means[0]), "contrastive_loss": float(means[1]), "diversity_loss": float(means[2]),
                         "perplexity": float(means[3])}  # fmt: skip
                echo(f"step {step} {elapsed / 60:.1f} min lr {lr:.2e} loss {entry['loss']:.3f} (contrastive {entry['contrastive_loss']:.3f}, "
                     f"diversity {entry['diversity_loss']:.3f}, perplexity {entry['perplexity']:.1f})")  # fmt: skip
                log.write(json.dumps(entry) + "\n")
                log.flush()
                window = []
            if time.time() - last_save > config.checkpoint_minutes * 60:
                save(last)
                last_save = time.time()
        save(last)
    return model.eval()


__all__ = ["PretrainConfig", "PretrainLoss", "gumbel_temperature", "load_waves", "pretrain", "pretraining_loss"]
