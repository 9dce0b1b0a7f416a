"""MQAR data: the layout of an example, determinism, disjoint splits, one-line config errors."""
import pytest
import torch

from mixnas.dataconf import ConfigError, from_dict
from mixnas.families.mqar.data import IGNORE, MQARDataConfig, eval_batches, generate

CONFIG = MQARDataConfig(vocab_size=32, seq_len=24, num_pairs=5, num_queries=4, train_examples=300,
                        val_examples=200, test_examples=100, seed=3)


def test_every_target_is_the_value_of_the_key_at_its_position():
    batch = generate(CONFIG, "val")
    p, half = CONFIG.num_pairs, CONFIG.vocab_size // 2
    assert batch.inputs.shape == batch.targets.shape == (200, 24) and batch.inputs.dtype == torch.int64
    for inputs, targets in zip(batch.inputs.tolist(), batch.targets.tolist()):
        keys, values = inputs[0:2 * p:2], inputs[1:2 * p:2]
        assert len(set(keys)) == p and len(set(values)) == p  # distinct keys and values
        assert all(1 <= k < half for k in keys) and all(half <= v < 32 for v in values)
        assert targets[:2 * p] == [IGNORE] * (2 * p)
        asked = [t for t in range(2 * p, 24) if targets[t] != IGNORE]
        assert len(asked) == 4 and len({inputs[t] for t in asked}) == 4  # distinct keys queried
        for t in asked:
            assert targets[t] == values[keys.index(inputs[t])]
        # the rest of the remainder is blank
        assert all(inputs[t] == 0 for t in range(2 * p, 24) if t not in asked)


def test_default_queries_every_key_once():
    config = MQARDataConfig(vocab_size=16, seq_len=16, num_pairs=4, train_examples=8, val_examples=8,
                            test_examples=8)
    batch = generate(config, "test")
    assert config.queries == 4 and ((batch.targets != IGNORE).sum(1) == 4).all()


def test_generation_is_deterministic_and_splits_are_disjoint():
    for split in ("train", "val", "test"):
        a, b = generate(CONFIG, split), generate(CONFIG, split)
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    rows = {split: {tuple(r) for r in generate(CONFIG, split).inputs.tolist()} for split in ("train", "val", "test")}
    assert len(rows["train"]) == 300  # no repeated example either
    assert not rows["train"] & rows["val"] and not rows["train"] & rows["test"] and not rows["val"] & rows["test"]
    other = MQARDataConfig(**{**CONFIG.__dict__, "seed": 4})
    assert not torch.equal(generate(other, "train").inputs, generate(CONFIG, "train").inputs)


def test_eval_batches_cover_the_first_limit_examples():
    pool = generate(CONFIG, "val")
    batches = list(eval_batches(pool, 64, limit=150))
    assert [len(b.inputs) for b in batches] == [64, 64, 22]
    assert torch.equal(torch.cat([b.targets for b in batches]), pool.targets[:150])


@pytest.mark.parametrize("data, message", [
    ({"num_pairs": 0}, "data.num_pairs must be a positive integer, got 0"),
    ({"num_queries": 9, "num_pairs": 8}, "data.num_queries=9 exceeds data.num_pairs=8"),
    ({"vocab_size": 16, "num_pairs": 8}, "data.vocab_size=16 has 7 keys, fewer than data.num_pairs=8"),
    ({"seq_len": 20, "num_pairs": 8}, "data.seq_len=20 cannot hold 8 pairs and 8 queries"),
    ({"seed": -1}, "data.seed must be an integer >= 0"),
    ({"train_examples": 10, "batch_size": 16}, "data.train_examples=10 is fewer than data.batch_size=16"),
    ({"pairs": 3}, "data: unknown key 'pairs'"),
])
def test_config_errors_are_one_line(data, message):
    with pytest.raises(ConfigError, match=message) as error:
        from_dict(MQARDataConfig, data, "data")
    assert "\n" not in str(error.value)
