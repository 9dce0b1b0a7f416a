"""Search: predictors (architecture features -> score or latency), objectives and constraints
(small interfaces the algorithms see), the constrained evolutionary search and NSGA-II."""
from .evolution import EvolutionConfig, SearchResult, evolution_search
from .nsga2 import nsga2_search
from .objectives import CallableObjective, Constraint, Objective, PredictorObjective, check_feasible, feasible_mask
from .predictors import (GBDTPredictor, MLPPredictor, Predictor, featurize, fit_predictor, load_metrics,
                         load_predictor, make_predictor, regression_metrics)

__all__ = ["CallableObjective", "Constraint", "EvolutionConfig", "GBDTPredictor", "MLPPredictor", "Objective",
           "Predictor", "PredictorObjective", "SearchResult", "check_feasible", "evolution_search", "feasible_mask",
           "featurize", "fit_predictor", "load_metrics", "load_predictor", "make_predictor", "nsga2_search",
           "regression_metrics"]
