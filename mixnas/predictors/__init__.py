"""Predictors: regressors from architecture features to a score or a latency, behind one
interface (`Predictor`) and one registry (`build_predictor(name, options, feature_names=...)`),
kept apart from the search algorithms that use them. Importing this package registers the
built-in kinds: `gbdt` (LightGBM, RankNAS) and `mlp` (HAT's latency MLP)."""
from . import gbdt, mlp  # noqa: F401  (registration side effect)
from .base import (FeaturePredictor, Predictor, fit_predictor, held_out_split, load_metrics, option_problem,
                   regression_metrics)
from .features import context_names, featurize
from .gbdt import GBDTPredictor
from .mlp import MLPPredictor
from .registry import build_predictor, get_predictor_class, load_predictor, predictor_kinds, predictor_options, register

__all__ = ["FeaturePredictor", "GBDTPredictor", "MLPPredictor", "Predictor", "build_predictor", "context_names",
           "featurize", "fit_predictor", "get_predictor_class", "held_out_split", "load_metrics", "load_predictor",
           "option_problem", "predictor_kinds", "predictor_options", "regression_metrics", "register"]
