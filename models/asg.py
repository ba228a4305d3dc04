"""Auto Segmentation criterion (Collobert et al., 2016), the loss Wav2Letter trains with.

ASG has no blank: every frame emits a token, consecutive frames of the same token merge,
and a learned transition matrix scores each step between frames. With
`transitions[next, prev]` the score of entering `next` from `prev` (the wav2letter
convention, shared with the server's decoders), a path's score is the sum of its frame
emissions plus its transitions. The loss is the unnormalised one of the paper:

    loss = -logsumexp(paths that spell the target) + logsumexp(all paths)

Both terms are forward recursions in log space, batched over utterances; padded frames
freeze the recursion so each utterance ends at its own length.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ASGLoss(nn.Module):
    def __init__(self, num_tokens: int, *, init_transitions: float = 0.0) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.transitions = nn.Parameter(torch.full((num_tokens, num_tokens), init_transitions))  # [next, prev]

    def forward(self, emissions: Tensor, targets: Tensor, input_lengths: Tensor, target_lengths: Tensor) -> Tensor:
        """emissions `[B, T, V]`, targets `[B, L]` (padded), lengths `[B]` -> loss per utterance `[B]`."""
        return full_graph_score(emissions, self.transitions, input_lengths) - target_graph_score(
            emissions, self.transitions, targets, input_lengths, target_lengths
        )


def full_graph_score(emissions: Tensor, transitions: Tensor, input_lengths: Tensor) -> Tensor:
    """log-sum-exp over every frame path of the fully connected graph, `[B]`."""
    batch, frames, _ = emissions.shape
    alpha = emissions[:, 0]  # [B, V]
    for t in range(1, frames):
        step = torch.logsumexp(alpha[:, None, :] + transitions[None], dim=2) + emissions[:, t]  # [B, V(next)]
        alpha = torch.where((t < input_lengths)[:, None], step, alpha)
    return torch.logsumexp(alpha, dim=1)


def target_graph_score(emissions: Tensor, transitions: Tensor, targets: Tensor, input_lengths: Tensor, target_lengths: Tensor) -> Tensor:
    """log-sum-exp over the frame paths that spell each target, `[B]`.

    State l means "currently in target token l"; a frame either stays (self transition) or
    moves to l + 1. Paths must start in state 0 and end in state L - 1.
    """
    batch, frames, _ = emissions.shape
    length = targets.shape[1]
    neg_inf = torch.finfo(emissions.dtype).min / 4
    targets = targets.clamp(min=0)
    emit = torch.gather(emissions, 2, targets[:, None, :].expand(batch, frames, length))  # [B, T, L]
    stay = transitions[targets, targets]  # [B, L]
    move = transitions[targets[:, 1:], targets[:, :-1]]  # [B, L-1]: into l from l-1
    alpha = torch.full((batch, length), neg_inf, dtype=emissions.dtype, device=emissions.device)
    alpha = torch.cat([emit[:, 0, :1], alpha[:, 1:]], dim=1)
    for t in range(1, frames):
        from_prev = torch.cat([torch.full_like(alpha[:, :1], neg_inf), alpha[:, :-1] + move], dim=1)
        step = torch.logaddexp(alpha + stay, from_prev) + emit[:, t]
        alpha = torch.where((t < input_lengths)[:, None], step, alpha)
    return alpha.gather(1, (target_lengths - 1).clamp(min=0)[:, None]).squeeze(1)
