"""Search: objectives and constraints (small interfaces the algorithms see; a fitted predictor
from `mixnas.predictors` plugs in as `PredictorObjective`), and the searchers behind one
registry (`build_searcher(name, config, seed)`): constrained evolution, NSGA-II and random search."""
from .evolution import EvolutionConfig, EvolutionSearcher, evolution_search
from .nsga2 import NSGA2Config, NSGA2Searcher, nsga2_search
from .objectives import CallableObjective, Constraint, Objective, PredictorObjective, check_feasible, feasible_mask
from .random_search import RandomConfig, RandomSearcher
from .searcher import SearchResult, Searcher, build_searcher, get_searcher, register_searcher, searchers

__all__ = ["CallableObjective", "Constraint", "EvolutionConfig", "EvolutionSearcher", "NSGA2Config", "NSGA2Searcher",
           "Objective", "PredictorObjective", "RandomConfig", "RandomSearcher", "SearchResult", "Searcher",
           "build_searcher", "check_feasible", "evolution_search", "feasible_mask", "get_searcher", "nsga2_search",
           "register_searcher", "searchers"]
