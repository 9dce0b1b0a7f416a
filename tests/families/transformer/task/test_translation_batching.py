"""Token-budget batches: row conventions, budget, filtering, coverage, determinism, resume, sharding."""

import pytest
import torch

from mixnas.families.transformer.task import BOS_ID, EOS_ID, PAD_ID, EncodedSplit, TokenBatches, collate


def _split(lengths: list[tuple[int, int]]) -> EncodedSplit:
    """Pairs whose tokens are recognisable: source i is [10 + i] * n, target [500 + i] * m."""
    return EncodedSplit.from_ids([[10 + i] * n for i, (n, _) in enumerate(lengths)], [[500 + i] * m for i, (_, m) in enumerate(lengths)])


def _random_split(n: int, seed: int = 0, longest: int = 30) -> EncodedSplit:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, longest, (n, 2), generator=g).tolist()
    return _split([tuple(pair) for pair in lengths])


def _ids(batches) -> list[list[int]]:
    return [batch.ids.tolist() for batch in batches]


def test_rows_follow_the_fairseq_layout():
    batch = collate(_split([(3, 2), (1, 4), (0, 0)]), torch.tensor([0, 1, 2]))
    P, B, E = PAD_ID, BOS_ID, EOS_ID
    assert batch.src.tolist() == [[10, 10, 10, E], [11, E, P, P], [E, P, P, P]]
    assert batch.prev_output_tokens.tolist() == [[B, 500, 500, P, P], [B, 501, 501, 501, 501], [B, P, P, P, P]]
    assert batch.target.tolist() == [[500, 500, E, P, P], [501, 501, 501, 501, E], [E, P, P, P, P]]
    assert batch.src_lengths.tolist() == [4, 2, 1]
    assert batch.n_tokens == 3 + 5 + 1
    assert batch.src.dtype == batch.target.dtype == torch.int64
    # target is prev_output_tokens shifted left by one wherever the row is not padding
    shifted = torch.cat([batch.prev_output_tokens[:, 1:], torch.full((3, 1), P)], dim=1)
    body = batch.target != E
    assert torch.equal(batch.target[body], shifted[body])


def _epoch(split: EncodedSplit, epoch: int = 1, **options) -> list:
    batches = TokenBatches(split, **options)
    batches.set_epoch(epoch)
    return list(batches)


def test_token_budget_and_coverage():
    split = _random_split(500)
    seen = []
    epoch = _epoch(split, max_tokens=200, seed=3)
    for batch in epoch:
        size = max(batch.src.shape[1], batch.target.shape[1])  # padded longer side
        assert len(batch) * size <= 200
        seen += batch.ids.tolist()
    assert sorted(seen) == list(range(500)), "every pair exactly once per epoch"
    assert len(epoch) == TokenBatches(split, max_tokens=200, seed=3).num_batches


def test_bucketing_groups_similar_lengths():
    split = _random_split(500)
    pad_fraction = [float((batch.src == PAD_ID).float().mean()) for batch in _epoch(split, max_tokens=300)]
    # Sorted by source length, source rows in a batch differ by at most a few tokens.
    assert sum(pad_fraction) / len(pad_fraction) < 0.05
    unsorted = collate(split, torch.arange(40))
    assert float((unsorted.src == PAD_ID).float().mean()) > 0.2


def test_max_positions_drops_and_counts():
    split = _split([(5, 5), (9, 2), (2, 9), (8, 8), (3, 3)])  # rows are one longer (EOS/BOS)
    batches = TokenBatches(split, max_tokens=100, max_positions=9, seed=0)
    assert batches.num_dropped == 2
    batches.set_epoch(1)
    assert sorted(i for ids in _ids(batches) for i in ids) == [0, 3, 4]
    with pytest.raises(ValueError, match=r"max_positions=2 drops all 5 pairs"):
        TokenBatches(split, max_tokens=100, max_positions=2)


def test_budget_errors():
    split = _split([(20, 3)])
    with pytest.raises(ValueError, match=r"max_tokens=10 is smaller than the longest kept pair \(21 tokens\)"):
        TokenBatches(split, max_tokens=10)
    with pytest.raises(ValueError, match=r"max_tokens must be positive"):
        TokenBatches(split, max_tokens=0)
    with pytest.raises(ValueError, match=r"max_sentences must be positive"):
        TokenBatches(split, max_tokens=100, max_sentences=0)


def test_max_sentences_caps_batch_size():
    batches = TokenBatches(_split([(1, 1)] * 20), max_tokens=1000, max_sentences=6, shuffle=False)
    batches.set_epoch(1)
    assert [len(ids) for ids in _ids(batches)] == [6, 6, 6, 2]


def test_epoch_order_is_a_function_of_seed_and_epoch():
    split = _random_split(300)

    def order(seed, epoch):
        batches = TokenBatches(split, max_tokens=150, seed=seed)
        batches.set_epoch(epoch)
        return _ids(batches)

    assert order(5, 1) == order(5, 1)
    assert order(5, 1) != order(5, 2)
    assert order(5, 1) != order(6, 1)
    assert sorted(order(5, 1)) == sorted(order(5, 2)), "the same batches, visited in another order"
    fixed = TokenBatches(split, max_tokens=150, shuffle=False)
    fixed.set_epoch(1)
    first = _ids(fixed)
    fixed.set_epoch(2)
    assert _ids(fixed) == first


def test_resume_mid_epoch_yields_the_same_batches():
    split = _random_split(300)
    reference = TokenBatches(split, max_tokens=150, seed=7)
    reference.set_epoch(2)
    expected = [(b.ids.tolist(), b.src.tolist(), b.target.tolist()) for b in reference]

    interrupted = TokenBatches(split, max_tokens=150, seed=7)
    interrupted.set_epoch(2)
    for _ in range(5):
        next(interrupted)
    state = interrupted.state_dict()

    resumed = TokenBatches(split, max_tokens=150, seed=7)
    resumed.load_state_dict(state)
    rest = [(b.ids.tolist(), b.src.tolist(), b.target.tolist()) for b in resumed]
    assert rest == expected[5:]


def test_shards_are_disjoint_and_cover_the_epoch_order():
    split = _random_split(300)
    whole = TokenBatches(split, max_tokens=150, seed=1)
    whole.set_epoch(3)
    order = _ids(whole)
    shards = []
    for rank in range(3):
        part = TokenBatches(split, max_tokens=150, seed=1)
        part.shard(rank, 3)
        part.set_epoch(3)
        shards.append(_ids(part))
    assert len({len(s) for s in shards}) == 1, "every rank gets as many batches (no all-reduce deadlock)"
    usable = len(order) - len(order) % 3
    for step in range(len(shards[0])):
        assert [shards[rank][step] for rank in range(3)] == order[3 * step : 3 * step + 3]
    flat = [i for s in shards for ids in s for i in ids]
    assert len(flat) == len(set(flat)) == sum(len(ids) for ids in order[:usable])
