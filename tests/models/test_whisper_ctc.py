"""The Whisper encoder with a CTC head (`models.whisper_ctc`) and the CTranslate2 reader (`models.whisper_ct2`),
against the references the family is meant to reproduce: faster-whisper's `FeatureExtractor` for the log-mel,
and ctranslate2's own Whisper encoder for a tiny random Whisper converted in-process (tests/whisper_helpers.py).
Nothing is downloaded."""

from __future__ import annotations

import math
from pathlib import Path

import ctranslate2
import numpy as np
import pytest
import torch
from faster_whisper.feature_extractor import FeatureExtractor

from models.whisper_ct2 import encoder_config, load_whisper_ctc, read_ct2
from models.whisper_ctc import HOP, WhisperCTC, WhisperCTCConfig, WhisperLogMel, block_mask, slaney_mel_filters
from tests.whisper_helpers import tiny_hf_whisper, tones, write_ct2_whisper

torch.set_num_threads(1)

MEL_TOLERANCE = 1e-4  # max abs error of the log-mel against faster-whisper
ENCODER_TOLERANCE = 1e-4  # max abs error of the encoder over its largest output, against ctranslate2


def tiny_ctc(seed: int = 0, **sizes: object) -> WhisperCTC:
    torch.manual_seed(seed)
    config = WhisperCTCConfig(**{"d_model": 32, "n_heads": 2, "n_layers": 1, **sizes})  # type: ignore[arg-type]
    model = WhisperCTC(config).eval()
    with torch.no_grad():
        model.positional.normal_(0.0, 0.3)
    return model


def log_mel(frontend: WhisperLogMel, wave: np.ndarray, lengths: list[int] | None = None) -> np.ndarray:
    batch = torch.from_numpy(np.atleast_2d(wave))
    with torch.no_grad():
        return frontend(batch, None if lengths is None else torch.tensor(lengths)).numpy()


def with_silence(wave: np.ndarray) -> np.ndarray:
    """Digital silence in the middle third: its log-mel sits on the clamp (the maximum - 8)."""
    out = wave.copy()
    out[len(out) // 3 : 2 * len(out) // 3] = 0.0
    return out


# --- the front end -----------------------------------------------------------------------------------------------------
def test_mel_filters_are_whispers() -> None:
    ours = slaney_mel_filters().numpy()
    reference = FeatureExtractor().mel_filters  # [80, n_fft // 2 + 1]
    assert ours.shape == (80, 201)
    np.testing.assert_allclose(ours, reference, atol=1e-7)


@pytest.mark.parametrize("samples", [400, 800, 16000, 52801])  # the shortest input a bundle accepts, 0.05 s, 1 s, 3.3 s
@pytest.mark.parametrize("silent_middle", [False, True])
def test_log_mel_matches_faster_whisper(samples: int, silent_middle: bool) -> None:
    wave = tones(samples / 16000, seed=samples)
    if silent_middle:
        wave = with_silence(wave)
    reference = FeatureExtractor()(wave)  # padding=160, as faster-whisper's transcribe calls it
    ours = log_mel(WhisperLogMel(), wave)[0]
    assert ours.shape == reference.shape == (80, samples // HOP + 1) == (80, WhisperLogMel.frames(samples))
    assert float(np.abs(ours - reference).max()) <= MEL_TOLERANCE
    if silent_middle and samples >= 16000:
        assert np.isclose(ours.min(), ours.max() - 2.0, atol=1e-6)  # the clamp was exercised: (max - 8 + 4) / 4


def test_log_mel_of_padded_rows_equals_each_row_alone() -> None:
    lengths = [52801, 16039, 800, 16040]  # remainders 1, 39, 0, 40 samples past a hop
    rows = [tones(n / 16000, seed=n) for n in lengths]
    batch = np.zeros((len(rows), max(lengths)), np.float32)
    for i, row in enumerate(rows):
        batch[i, : len(row)] = row
    frontend = WhisperLogMel()
    padded = log_mel(frontend, batch, lengths)
    assert padded.shape == (4, 80, WhisperLogMel.frames(max(lengths)))
    for i, row in enumerate(rows):
        alone = log_mel(frontend, row)[0]
        np.testing.assert_allclose(
            padded[i, :, : alone.shape[1]], alone, atol=1e-5, err_msg=f"row {i} ({lengths[i]} samples)"
        )


def test_lengths_keep_what_follows_a_row_out_of_its_clamp() -> None:
    """Samples past a row's frames (here loud noise) must not raise the row's maximum, and with it the clamp on its
    quiet frames. (They start 200 samples after the row: the last valid frame's window reaches that far.)"""
    n = 16000
    row = with_silence(tones(n / 16000, seed=5))
    noise = np.random.default_rng(0).uniform(-1, 1, 8000).astype(np.float32)
    gap = np.zeros(200, np.float32)
    batch = np.stack([np.concatenate([row, gap, noise]), np.concatenate([noise, row, gap])])
    frontend = WhisperLogMel()
    alone = log_mel(frontend, row)[0]
    masked = log_mel(frontend, batch, [n, batch.shape[1]])[0]
    np.testing.assert_allclose(masked[:, : alone.shape[1]], alone, atol=1e-5)
    unmasked = log_mel(frontend, batch)[0]
    assert float(np.abs(unmasked[:, : alone.shape[1]] - alone).max()) > 0.1  # so the mask is what kept them equal


# --- attention masks ---------------------------------------------------------------------------------------------------
def brute_force_mask(frames: int, valid: list[int], *, chunk: int, left_chunks: int) -> np.ndarray:
    """The docstring's rule, one query and key at a time: keys past a row's length are hidden; with chunks, a query
    sees the keys from `left_chunks` chunks before its own (all before it when 0) to the end of its own chunk."""
    mask = np.zeros((len(valid), 1, frames, frames), bool)
    for b, n in enumerate(valid):
        for q in range(frames):
            for k in range(frames):
                if k >= n:
                    continue
                if chunk == 0:
                    mask[b, 0, q, k] = True
                    continue
                own = q // chunk
                first = max(own - left_chunks, 0) * chunk if left_chunks > 0 else 0
                mask[b, 0, q, k] = first <= k < (own + 1) * chunk
    return mask


@pytest.mark.parametrize("chunk", [0, 1, 3, 4, 7, 12])
@pytest.mark.parametrize("left_chunks", [0, 1, 2])
def test_block_mask_against_brute_force(chunk: int, left_chunks: int) -> None:
    valid = [10, 7, 1, 4]
    mask = block_mask(10, torch.tensor(valid), chunk=chunk, left_chunks=left_chunks)
    assert mask.dtype == torch.bool and mask.shape == (4, 1, 10, 10)
    np.testing.assert_array_equal(mask.numpy(), brute_force_mask(10, valid, chunk=chunk, left_chunks=left_chunks))


def test_chunked_outputs_are_final_once_their_chunk_is_in() -> None:
    """With `chunk_frames`, a frame never sees later chunks; each layer reaches `left_chunks` chunks further back."""
    model = tiny_ctc(n_layers=2, chunk_frames=4, left_chunks=1)
    x = torch.randn(1, 16, 32)
    lengths = torch.tensor([16])
    with torch.no_grad():
        base = model.encode(x, lengths, chunked=True)
        later = x.clone()
        later[:, 8:] += torch.randn(1, 8, 32)
        first = x.clone()
        first[:, :4] += torch.randn(1, 4, 32)
        changed_later, changed_first = model.encode(later, lengths, chunked=True), model.encode(first, lengths, chunked=True)
    torch.testing.assert_close(changed_later[:, :8], base[:, :8], atol=1e-6, rtol=0)
    assert float((changed_later[:, 8:] - base[:, 8:]).abs().max()) > 1e-3
    # chunk 2 sees chunk 1, which saw chunk 0 one layer down
    assert float((changed_first[:, 8:12] - base[:, 8:12]).abs().max()) > 1e-3
    torch.testing.assert_close(changed_first[:, 12:], base[:, 12:], atol=1e-6, rtol=0)  # chunk 3 is three chunks away


# --- frame counts ------------------------------------------------------------------------------------------------------
LENGTHS = [400, 401, 479, 480, 481, 559, 560, 639, 640, 641, 799, 800, 801, 12345, 16000, 16159, 16160, 16319, 16320, 48000]  # fmt: skip


def test_output_frames_is_what_forward_returns() -> None:
    model = tiny_ctc()
    for n in LENGTHS:
        with torch.no_grad():
            logp, out_lengths = model(torch.from_numpy(tones(n / 16000, seed=n))[None])
        assert logp.shape == (1, WhisperCTC.output_frames(n), 29), n
        assert out_lengths.tolist() == [logp.shape[1]]
        assert logp.shape[1] == math.ceil((n // HOP + 1) / 2) == n // 320 + 1  # the class docstring's formula
        torch.testing.assert_close(logp.exp().sum(-1), torch.ones(1, logp.shape[1]))
    lengths = torch.tensor([48000, 641, 16159])
    batch = torch.zeros(3, 48000)
    for i, n in enumerate(lengths.tolist()):
        batch[i, :n] = torch.from_numpy(tones(n / 16000, seed=n))
    with torch.no_grad():
        logp, out_lengths = model(batch, lengths)
    expected = [WhisperCTC.output_frames(n) for n in lengths.tolist()]
    assert out_lengths.tolist() == expected == WhisperCTC.output_frames(lengths).tolist()
    assert logp.shape[1] == WhisperCTC.output_frames(48000)


# --- the CTranslate2 reference -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hf_whisper() -> object:
    return tiny_hf_whisper(seed=3)


@pytest.fixture(scope="module")
def model_bin(hf_whisper: object, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ct2_whisper(tmp_path_factory.mktemp("ct2") / "whisper-tiny-random", hf_whisper)


def hf_encoder_weights(hf: object) -> dict[str, np.ndarray]:
    """What ctranslate2's converter should have stored for the encoder, computed from the transformers weights."""
    encoder = hf.model.encoder  # type: ignore[attr-defined]

    def a(t: torch.Tensor) -> np.ndarray:
        return t.detach().numpy()

    out = {"encoder/conv1/weight": a(encoder.conv1.weight), "encoder/conv1/bias": a(encoder.conv1.bias), "encoder/conv2/weight": a(encoder.conv2.weight),
           "encoder/conv2/bias": a(encoder.conv2.bias), "encoder/position_encodings/encodings": a(encoder.embed_positions.weight),
           "encoder/layer_norm/gamma": a(encoder.layer_norm.weight), "encoder/layer_norm/beta": a(encoder.layer_norm.bias)}  # fmt: skip
    for i, layer in enumerate(encoder.layers):
        attn, p = layer.self_attn, f"encoder/layer_{i}"
        out |= {
            f"{p}/self_attention/layer_norm/gamma": a(layer.self_attn_layer_norm.weight),
            f"{p}/self_attention/layer_norm/beta": a(layer.self_attn_layer_norm.bias),
            f"{p}/self_attention/linear_0/weight": a(
                torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
            ),
            f"{p}/self_attention/linear_0/bias": a(
                torch.cat([attn.q_proj.bias, torch.zeros_like(attn.q_proj.bias), attn.v_proj.bias])
            ),
            f"{p}/self_attention/linear_1/weight": a(attn.out_proj.weight),
            f"{p}/self_attention/linear_1/bias": a(attn.out_proj.bias),
            f"{p}/ffn/layer_norm/gamma": a(layer.final_layer_norm.weight),
            f"{p}/ffn/layer_norm/beta": a(layer.final_layer_norm.bias),
            f"{p}/ffn/linear_0/weight": a(layer.fc1.weight),
            f"{p}/ffn/linear_0/bias": a(layer.fc1.bias),
            f"{p}/ffn/linear_1/weight": a(layer.fc2.weight),
            f"{p}/ffn/linear_1/bias": a(layer.fc2.bias),
        }
    return out


def test_read_ct2_holds_the_hugging_face_weights(model_bin: Path, hf_whisper: object) -> None:
    ct2 = read_ct2(model_bin)
    assert (ct2.spec, ct2.revision) == ("WhisperSpec", 3)
    assert int(ct2.get("encoder/num_heads")) == 4
    expected = hf_encoder_weights(hf_whisper)
    for name, value in expected.items():
        assert ct2.get(name).shape == value.shape, name
        np.testing.assert_array_equal(ct2.get(name), value, err_msg=name)
    decoder = hf_whisper.model.decoder  # type: ignore[attr-defined]
    np.testing.assert_array_equal(
        ct2.get("decoder/projection/weight"), decoder.embed_tokens.weight.detach().numpy()
    )  # an alias
    encoder_only = read_ct2(model_bin, prefix="encoder/")
    assert set(encoder_only.variables) == {k for k in ct2.variables if k.startswith("encoder/")} >= set(expected)


def test_encoder_config_reads_the_sizes(model_bin: Path) -> None:
    ct2 = read_ct2(model_bin, prefix="encoder/")
    assert encoder_config(ct2) == WhisperCTCConfig(n_mels=80, d_model=64, n_heads=4, n_layers=2, max_frames=1500)
    assert encoder_config(ct2, n_layers=1, head="conv").n_layers == 1


def test_encoder_matches_ctranslate2(model_bin: Path) -> None:
    """`ln_post(encode(stem(mel)))` against `ctranslate2.models.Whisper.encode` on the 30 s input it takes."""
    model = load_whisper_ctc(model_bin).eval()
    wave = tones(3.3, seed=7)
    mel = FeatureExtractor()(np.pad(wave, (0, 16000 * 30 - len(wave))))[:, :3000].astype(
        np.float32
    )  # as faster-whisper feeds it
    whisper = ctranslate2.models.Whisper(str(model_bin.parent), device="cpu", intra_threads=1)
    reference = np.array(whisper.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None]))))[0]
    with torch.no_grad():
        x = model.stem(torch.from_numpy(mel)[None])
        ours = model.ln_post(model.encode(x, torch.tensor([x.shape[1]])))[0].numpy()
    assert ours.shape == reference.shape == (1500, 64)
    assert float(np.abs(reference).max()) > 1.0 and float(reference.std()) > 0.1  # not a degenerate output
    assert float(np.abs(ours - reference).max()) <= ENCODER_TOLERANCE * float(np.abs(reference).max())


def test_load_keeps_the_first_layers_and_a_fresh_head(model_bin: Path) -> None:
    full = load_whisper_ctc(model_bin)
    short = load_whisper_ctc(model_bin, n_layers=1, n_tokens=12)
    assert len(full.blocks) == 2 and len(short.blocks) == 1 and short.head.out_features == 12
    for name, value in short.state_dict().items():
        if not name.startswith("head."):
            torch.testing.assert_close(value, full.state_dict()[name], rtol=0, atol=0, msg=name)


@pytest.mark.parametrize(("quantization", "dtype"), [("float16", torch.float16), ("bfloat16", torch.bfloat16)])
def test_half_precision_conversions_read_as_rounded(
    hf_whisper: object, model_bin: Path, tmp_path: Path, quantization: str, dtype: torch.dtype
) -> None:
    """The published conversions are float16; bfloat16 has its own dtype id in the format."""
    path = write_ct2_whisper(tmp_path / quantization, hf_whisper, quantization=quantization)
    ct2 = read_ct2(path, prefix="encoder/")
    for name, value in hf_encoder_weights(hf_whisper).items():
        rounded = torch.from_numpy(value).to(dtype).float().numpy()
        np.testing.assert_array_equal(ct2.get(name).astype(np.float32), rounded, err_msg=name)
    half, full = load_whisper_ctc(path).eval(), load_whisper_ctc(model_bin).eval()
    mel = torch.from_numpy(log_mel(WhisperLogMel(), tones(1.0, seed=1)))
    with torch.no_grad():
        a, b = (m.ln_post(m.encode(m.stem(mel), torch.tensor([51]))) for m in (half, full))
    assert float((a - b).abs().max()) <= 0.02 * float(b.abs().max())


def test_int8_conversion_is_refused(hf_whisper: object, tmp_path: Path) -> None:
    """int8 weights mean nothing without their scales: loading them as floats gave a silently wrong encoder."""
    path = write_ct2_whisper(tmp_path / "int8", hf_whisper, quantization="int8")
    assert read_ct2(path, prefix="encoder/").get("encoder/conv1/weight").dtype == np.int8
    with pytest.raises(ValueError, match="quantized conversion"):
        load_whisper_ctc(path)
