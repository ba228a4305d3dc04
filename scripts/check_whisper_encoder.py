"""Check the project's Whisper front end and encoder against faster-whisper / ctranslate2 itself.

    python scripts/check_whisper_encoder.py MODEL_DIR [AUDIO]

MODEL_DIR holds a CTranslate2 Whisper conversion (model.bin, config.json; e.g. the `eval` extra's
tiny.en). Prints the largest absolute differences of the log-mel (against faster-whisper's
`FeatureExtractor`) and of the encoder output on a 30 s input (against `WhisperModel.model.encode`).
Needs the `eval` extra (faster-whisper); the server never does.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    import faster_whisper
    from faster_whisper.feature_extractor import FeatureExtractor

    from app.asr.audio import decode_audio
    from models.whisper_ct2 import load_whisper_ctc

    argv = sys.argv[1:] if argv is None else argv
    model_dir = Path(argv[0])
    if len(argv) > 1:
        audio = decode_audio(Path(argv[1]).read_bytes(), sample_rate=16000, max_seconds=30).samples
    else:
        rng = np.random.default_rng(0)
        t = np.arange(16000 * 7) / 16000
        audio = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
    model = load_whisper_ctc(model_dir / "model.bin").eval()
    ref_fe = FeatureExtractor()
    ref_mel = ref_fe(audio)  # [80, N // 160 + 1] as faster-whisper computes it (padding=160)
    with torch.no_grad():
        ours = model.frontend(torch.from_numpy(audio)[None])[0].numpy()
    mel_err = float(np.abs(ours - ref_mel).max())
    # the 30 s input faster-whisper's transcribe feeds its encoder: the padded clip's features
    padded = np.pad(audio, (0, 16000 * 30 - audio.size))
    mel30 = ref_fe(padded)[:, :3000]
    ct2 = faster_whisper.WhisperModel(str(model_dir), device="cpu", compute_type="float32")
    ref_enc = np.array(ct2.model.encode(faster_whisper.transcribe.get_ctranslate2_storage(mel30[None].astype(np.float32))))
    with torch.no_grad():
        x = model.stem(torch.from_numpy(mel30)[None])
        hidden = model.ln_post(model.encode(x, torch.tensor([x.shape[1]])))[0].numpy()
    enc_err = float(np.abs(hidden - ref_enc).max())
    print(json.dumps({"mel_max_abs_error": mel_err, "mel_frames": list(ours.shape), "encoder_max_abs_error": enc_err, "encoder_max_abs_value": float(np.abs(ref_enc).max()), "encoder_shape": list(ref_enc.shape)}))
    return 0 if mel_err <= 1e-4 and enc_err <= 1e-3 * max(1.0, float(np.abs(ref_enc).max())) else 1


if __name__ == "__main__":
    raise SystemExit(main())
