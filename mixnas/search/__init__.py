"""Search: predictors (architecture features -> score or latency), objectives and constraints
(small interfaces the algorithms see), and the searchers behind one registry
(`build_searcher(name, config, seed)`): constrained evolution, NSGA-II and random search."""
from .evolution import EvolutionConfig, EvolutionSearcher, evolution_search
from .nsga2 import NSGA2Config, NSGA2Searcher, nsga2_search
from .objectives import CallableObjective, Constraint, Objective, PredictorObjective, check_feasible, feasible_mask
from .predictors import (GBDTPredictor, MLPPredictor, Predictor, featurize, fit_predictor, load_metrics,
                         load_predictor, make_predictor, regression_metrics)
from .random_search import RandomConfig, RandomSearcher
from .searcher import SearchResult, Searcher, build_searcher, get_searcher, register_searcher, searchers

__all__ = ["CallableObjective", "Constraint", "EvolutionConfig", "EvolutionSearcher", "GBDTPredictor",
           "MLPPredictor", "NSGA2Config", "NSGA2Searcher", "Objective", "Predictor", "PredictorObjective",
           "RandomConfig", "RandomSearcher", "SearchResult", "Searcher", "build_searcher", "check_feasible",
           "evolution_search", "feasible_mask", "featurize", "fit_predictor", "get_searcher", "load_metrics",
           "load_predictor", "make_predictor", "nsga2_search", "register_searcher", "regression_metrics",
           "searchers"]
