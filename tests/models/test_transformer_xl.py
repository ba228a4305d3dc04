"""Transformer-XL properties: recurrence equals one pass, causality, relative shift, memory shapes."""

from __future__ import annotations

import pytest
import torch

from models.transformer_xl import RelativeAttention, TransformerXL, causal_mask, rel_shift, sinusoid_positions

torch.set_num_threads(1)

VOCAB = 29


def tiny(*, mem_len: int = 16, dropout: float = 0.0) -> TransformerXL:
    torch.manual_seed(0)
    model = TransformerXL(
        vocab_size=VOCAB, d_model=32, n_head=2, d_head=16, d_inner=64, n_layer=3, mem_len=mem_len, dropout=dropout
    )
    return model.eval()


def test_segment_with_memory_equals_one_pass() -> None:
    model = tiny(mem_len=12)
    tokens = torch.randint(0, VOCAB, (2, 20))
    first, second = tokens[:, :12], tokens[:, 12:]
    with torch.no_grad():
        full, _ = model(tokens)
        logits1, mems = model(first)
        logits2, _ = model(second, mems)
    torch.testing.assert_close(logits1, full[:, :12], atol=1e-5, rtol=0)
    torch.testing.assert_close(logits2, full[:, 12:], atol=1e-5, rtol=0)


def test_three_segments_with_long_memory_equal_one_pass() -> None:
    model = tiny(mem_len=64)
    tokens = torch.randint(0, VOCAB, (3, 21))
    with torch.no_grad():
        full, full_mems = model(tokens)
        mems: list[torch.Tensor] | None = None
        pieces = []
        for start, end in ((0, 5), (5, 6), (6, 21)):
            logits, mems = model(tokens[:, start:end], mems)
            pieces.append(logits)
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=0)
    assert mems is not None
    for a, b in zip(mems, full_mems, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_empty_memory_equals_none() -> None:
    model = tiny()
    tokens = torch.randint(0, VOCAB, (2, 7))
    with torch.no_grad():
        a, mems_a = model(tokens)
        b, mems_b = model(tokens, model.empty_mems(2))
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert [m.shape for m in mems_a] == [m.shape for m in mems_b]


def test_future_tokens_do_not_change_earlier_logits() -> None:
    model = tiny()
    tokens = torch.randint(0, VOCAB, (1, 10))
    changed = tokens.clone()
    changed[0, 6] = (changed[0, 6] + 1) % VOCAB
    with torch.no_grad():
        _, mems = model(torch.randint(0, VOCAB, (1, 5)))
        a, _ = model(tokens, mems)
        b, _ = model(changed, mems)
    torch.testing.assert_close(a[:, :6], b[:, :6], atol=0, rtol=0)
    assert not torch.allclose(a[:, 6:], b[:, 6:])


@pytest.mark.parametrize(("mem_len", "lengths"), [(8, (5, 2, 4)), (4, (3, 9)), (0, (3, 2))])
def test_new_mems_shapes(mem_len: int, lengths: tuple[int, ...]) -> None:
    model = tiny(mem_len=mem_len)
    mems = None
    held = 0
    for length in lengths:
        logits, mems = model(torch.randint(0, VOCAB, (2, length)), mems)
        held = min(held + length, mem_len)
        assert logits.shape == (2, length, VOCAB)
        assert len(mems) == 3
        assert all(m.shape == (2, held, 32) and not m.requires_grad for m in mems)


def test_new_mems_are_the_last_layer_inputs() -> None:
    model = tiny(mem_len=6)
    tokens = torch.randint(0, VOCAB, (2, 10))
    with torch.no_grad():
        _, hiddens = model.forward_hiddens(tokens)
        _, mems = model(tokens)
    for mem, hidden in zip(mems, hiddens, strict=True):
        torch.testing.assert_close(mem, hidden[:, -6:], atol=0, rtol=0)


def test_rel_shift_aligns_distances_with_key_positions() -> None:
    # Column r of the input holds distance K-1-r; after the shift column j must hold M+i-j.
    B, H, M, T = 1, 2, 3, 4
    K = M + T
    rows = torch.arange(T)[:, None].float()
    distances = (K - 1 - torch.arange(K))[None, :].float()
    scores = (1000 * rows + distances).expand(B, H, T, K)
    shifted = rel_shift(scores)
    mask = causal_mask(mem_len=M, qlen=T, device=torch.device("cpu"))
    for i in range(T):
        for j in range(K):
            if not mask[i, j]:
                assert shifted[0, 1, i, j] == 1000 * i + (M + i - j)


def test_relative_attention_matches_the_explicit_formula() -> None:
    # One attention layer against q·k + q·R + u·k + v·R written out per (i, j).
    model = tiny()
    attention = model.layers[0].attention
    assert isinstance(attention, RelativeAttention)
    B, M, T, d = 1, 3, 4, 32
    x, mem = torch.randn(B, T, d), torch.randn(B, M, d)
    K = M + T
    positions = sinusoid_positions(K - 1 - torch.arange(K), d)
    mask = causal_mask(mem_len=M, qlen=T, device=torch.device("cpu"))
    with torch.no_grad():
        got = attention(x, positions, mem=mem, mask=mask)
        H, D = attention.n_head, attention.d_head
        context = torch.cat([mem, x], 1)[0]
        q = attention.query(x[0]).reshape(T, H, D)
        k, v = (t.reshape(K, H, D) for t in attention.key_value(context).chunk(2, dim=-1))
        r_by_distance = attention.position(sinusoid_positions(torch.arange(K), d)).reshape(K, H, D)
        scores = torch.full((H, T, K), float("-inf"))
        for i in range(T):
            for j in range(M + i + 1):
                r = r_by_distance[M + i - j]
                scores[:, i, j] = ((q[i] + attention.u) * k[j]).sum(-1) + ((q[i] + attention.v) * r).sum(-1)
        weights = (scores / D**0.5).softmax(-1)  # [H, T, K]
        y = torch.einsum("htk,khd->thd", weights, v).reshape(T, H * D)
        expected = attention.out(y)[None]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_config_rebuilds_the_model() -> None:
    model = tiny()
    again = TransformerXL.from_config(model.config)
    again.load_state_dict(model.state_dict())
    assert again.head.weight is again.embedding.weight
