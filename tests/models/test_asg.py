"""ASG loss against brute-force enumeration of every frame path (value and gradients)."""

import itertools

import pytest
import torch

from app.asr.tokens import asg_letters
from models.asg import ASGLoss


def merge(path: tuple[int, ...]) -> list[int]:
    return [tok for i, tok in enumerate(path) if i == 0 or tok != path[i - 1]]


def brute_force_loss(emissions: torch.Tensor, transitions: torch.Tensor, target: list[int]) -> torch.Tensor:
    frames, vocab = emissions.shape
    all_scores, target_scores = [], []
    for path in itertools.product(range(vocab), repeat=frames):
        score = emissions[0, path[0]] + sum(emissions[t, path[t]] + transitions[path[t], path[t - 1]] for t in range(1, frames))
        all_scores.append(score)
        if merge(path) == target:
            target_scores.append(score)
    return torch.logsumexp(torch.stack(all_scores), 0) - torch.logsumexp(torch.stack(target_scores), 0)


@pytest.mark.parametrize("seed", range(4))
def test_asg_matches_brute_force_value_and_gradients(seed: int) -> None:
    torch.manual_seed(seed)
    vocab, frames = 4, 5
    targets = [[1, 2, 1], [3, 0], [2, 3], [0]]
    lengths = [5, 4, 3, 5]
    loss_fn = ASGLoss(vocab)
    with torch.no_grad():
        loss_fn.transitions.normal_()
    emissions = torch.randn(len(targets), frames, vocab, dtype=torch.float64, requires_grad=True)
    loss_fn = loss_fn.double()
    padded = torch.tensor([t + [-1] * (3 - len(t)) for t in targets])
    loss = loss_fn(emissions, padded, torch.tensor(lengths), torch.tensor([len(t) for t in targets]))
    loss.sum().backward()
    got_emission_grad = emissions.grad.clone()
    got_transition_grad = loss_fn.transitions.grad.clone()

    emissions2 = emissions.detach().clone().requires_grad_(True)
    transitions2 = loss_fn.transitions.detach().clone().requires_grad_(True)
    expected = torch.stack([brute_force_loss(emissions2[b, : lengths[b]], transitions2, targets[b]) for b in range(len(targets))])
    expected.sum().backward()
    torch.testing.assert_close(loss, expected.detach())
    torch.testing.assert_close(got_emission_grad, emissions2.grad)
    torch.testing.assert_close(got_transition_grad, transitions2.grad)


def test_asg_with_repetition_labels() -> None:
    """"hello" is h e l 1 o: the label says "one more l"; brute force agrees on the encoded target."""
    table = asg_letters()
    target = table.encode("lol")  # no repeats: plain letters
    doubled = table.encode("ll")
    assert table.tokens[doubled[1]] == "1"
    torch.manual_seed(0)
    # Restrict to a 4-token sub-vocabulary to keep brute force small: l, o, '1', '|'.
    sub = [table.index["l"], table.index["o"], table.index["1"], table.index["|"]]
    remap = {tok: i for i, tok in enumerate(sub)}
    for text_ids in (target, doubled):
        ids = [remap[i] for i in text_ids]
        emissions = torch.randn(1, 5, 4, dtype=torch.float64)
        loss_fn = ASGLoss(4).double()
        with torch.no_grad():
            loss_fn.transitions.normal_()
        got = loss_fn(emissions, torch.tensor([ids]), torch.tensor([5]), torch.tensor([len(ids)]))
        torch.testing.assert_close(got[0], brute_force_loss(emissions[0], loss_fn.transitions.detach(), ids))


def test_asg_is_stable_on_long_inputs() -> None:
    torch.manual_seed(0)
    emissions = (torch.randn(2, 2000, 30) * 20).requires_grad_(True)
    loss_fn = ASGLoss(30)
    targets = torch.randint(0, 30, (2, 300))
    loss = loss_fn(emissions, targets, torch.tensor([2000, 1500]), torch.tensor([300, 200]))
    loss.sum().backward()
    assert torch.isfinite(loss).all() and (loss > 0).all()
    assert torch.isfinite(emissions.grad).all()
