"""first_max / pick_winners: the max reduction of RoI max pooling, against a plain loop
that does what the C kernels do (running maximum from a floor, strictly larger wins)."""
import torch

from frcnn_plugin.ops.first_max import first_max, pick_winners

FLOOR = -10.0


def kernel_loop(source, bin_rows, floor):
    """The C kernels' loop: per bin and channel, start at floor, replace if larger."""
    channels = source.size(1)
    best = torch.full((len(bin_rows), channels), floor)
    winner = torch.full((len(bin_rows), channels), -1, dtype=torch.long)
    for b, rows in enumerate(bin_rows):
        for c in range(channels):
            for r in rows:
                if source[r, c] > best[b, c]:
                    best[b, c], winner[b, c] = source[r, c], r
    return best, winner


def groups_of(bin_rows):
    """Bins grouped by candidate count, as the callers group them."""
    by_k = {}
    for b, rows in enumerate(bin_rows):
        by_k.setdefault(len(rows), []).append((b, rows))
    return [(torch.tensor([b for b, _ in items]),
             torch.tensor([rows for _, rows in items], dtype=torch.long).view(len(items), k))
            for k, items in by_k.items()]


def random_bins(num_bins, num_rows, seed):
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(0, 6, (num_bins,), generator=g).tolist()
    return [torch.randint(0, num_rows, (k,), generator=g).tolist() for k in sizes]


def test_equals_the_kernel_loop_with_ties_and_the_floor():
    g = torch.Generator().manual_seed(0)
    # Few distinct values: many ties; some at or below the floor.
    source = torch.randint(-12, -6, (40, 3), generator=g).float()
    bin_rows = random_bins(60, 40, seed=1)
    best, winner = first_max(source, groups_of(bin_rows), len(bin_rows), FLOOR)
    ref_best, ref_winner = kernel_loop(source, bin_rows, FLOOR)
    assert torch.equal(best, ref_best)
    # Where the floor won there is no winner: row S, one past the last.
    assert torch.equal(winner, ref_winner.where(ref_winner >= 0, len(source)))
    assert (ref_winner < 0).any() and (ref_winner >= 0).any()
    assert any(len(rows) == 0 for rows in bin_rows)


def test_pick_winners_gives_the_gradient_to_the_first_maximum_only():
    g = torch.Generator().manual_seed(2)
    source = torch.randint(-11, -8, (30, 4), generator=g).float().requires_grad_()
    bin_rows = random_bins(50, 30, seed=3)
    best, winner = first_max(source.detach(), groups_of(bin_rows), len(bin_rows), FLOOR)
    pooled = pick_winners(source, best, winner)
    grad_out = torch.randn(pooled.shape, generator=g)
    pooled.backward(grad_out)
    ref_best, ref_winner = kernel_loop(source.detach(), bin_rows, FLOOR)
    assert torch.equal(pooled.detach(), ref_best)
    expected = torch.zeros_like(source)
    won = ref_winner >= 0
    expected.index_put_((ref_winner[won], won.nonzero()[:, 1]), grad_out[won], accumulate=True)
    assert torch.equal(source.grad, expected)


def test_without_winner_and_without_candidates():
    source = torch.randn(5, 2)
    best, winner = first_max(source, [], 3, FLOOR, need_winner=False)
    assert winner is None and torch.equal(best, torch.full((3, 2), FLOOR))
    best, _ = first_max(source, [], 3, FLOOR, need_winner=False, empty=0.)
    assert torch.equal(best, torch.zeros(3, 2))
    empty = torch.zeros((0, 2), requires_grad=True)
    best, winner = first_max(empty.detach(), [], 3, FLOOR)
    pooled = pick_winners(empty, best, winner)
    pooled.sum().backward()  # still linked to the input
    assert torch.equal(pooled.detach(), best) and empty.grad.shape == (0, 2)
