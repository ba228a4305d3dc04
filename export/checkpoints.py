"""The project's Wav2Letter checkpoints read back, and the error every exporter raises for a bad checkpoint.

Below both `export.wav2letter` (which bundles a checkpoint) and `export.streaming` (which adds the
cached streaming graph to an existing bundle from the same checkpoint), so neither imports the other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from app.asr.tokens import TokenTable
from models.wav2letter import Wav2Letter, Wav2LetterConfig


class CheckpointError(ValueError):
    """The checkpoint is missing, incomplete, of the wrong shape or of an unknown kind."""


def load_project_checkpoint(path: Path) -> tuple[Wav2Letter, TokenTable, str, np.ndarray | None]:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({e})") from e
    missing = [k for k in ("architecture", "config", "tokens", "model", "criterion") if k not in state]
    if missing or state.get("architecture") != "wav2letter":
        raise CheckpointError(f"{path}: not a project Wav2Letter checkpoint (missing {missing or 'architecture=wav2letter'})")
    config = Wav2LetterConfig.from_json(state["config"])
    model = Wav2Letter(config)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the stored config: {str(e).splitlines()[0]}") from e
    tok = state["tokens"]
    table = TokenTable(tuple(tok["tokens"]), tok.get("word_separator", "|"), tok.get("blank"), tok.get("repetition_labels", 0))
    transitions = None
    if state["criterion"] == "asg":
        if state.get("transitions") is None:
            raise CheckpointError(f"{path}: an ASG checkpoint must hold its transition matrix")
        transitions = state["transitions"].detach().cpu().numpy().astype(np.float32)
        if transitions.shape != (len(table), len(table)):
            raise CheckpointError(f"{path}: transitions of shape {transitions.shape} for {len(table)} tokens")
    return model.eval(), table, state["criterion"], transitions
