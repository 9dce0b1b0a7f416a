"""A noiseless known target on real architecture features, shared by the predictor tests."""
import random

import numpy as np

from mixnas.predictors import featurize
from mixnas.space.search_space import SearchSpace


def width_cost(arch) -> float:
    """A positive, parameter-count-like cost (embed x ffn summed over layers): a latency stand-in."""
    stacks = [(arch.encoder_embed_dim, arch.encoder_layers), (arch.decoder_embed_dim, arch.decoder_layers)]
    return float(sum(dim * layer.ffn_dim for dim, layers in stacks for layer in layers))


def known_data():
    """(space, archs, X, y, names): a linear part + an interaction, with a src_len context column."""
    space = SearchSpace.load("multi30k_small")
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(1000)]
    X = featurize(space, archs, {"src_len": [rng.choice([10, 20, 30]) for _ in archs]})
    w = np.random.default_rng(0).normal(size=len(space.feature_names()))
    y = X[:, :-1] @ w + 0.5 * X[:, 0] * X[:, 1] + 0.05 * X[:, -1]
    names = space.feature_names() + ["ctx:src_len"]
    return space, archs, X, y, names
