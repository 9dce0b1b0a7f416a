"""The search step (pipeline step 5): constrained evolution on the whole space and on its
single-kind sub-spaces (search.restricted_kinds: all-softmax and all-cosFormer, the paper's;
all-linear for a softmax/linear hybrid space), a random-search control on the whole space, plus an
optional NSGA-II front. Every search is a searcher of the registry (mixnas.search.build_searcher).

The fitness is the predicted score (the fitted performance predictor) or the inherited score
(the supernet's weights on collect.score_limit validation examples), per `search.objective`.
Constraints: predicted latency (latency predictor), FLOPs and params (analytic, without
embeddings, as HAT reports them), the decoding state's bytes (analytic); FLOPs, latency and
state at the pipeline's `cost` options (e.g. a language model's seq_len). The restricted
searches use the same YAML space with the attention-kind lists narrowed to one kind; they are sampled and mutated in the sub-space but
featurised with the full space, the encoding the predictors were fitted on. Their result is
the paper's comparison: the best all-softmax, all-cosFormer and mixed architectures under the
same constraints.

The random search (`search.random`) is the control the evolution must beat: the same space,
objective and constraints, and by default (`budget: null`) as many distinct evaluated
architectures as the mixed evolution search evaluated. It draws from the same seeded stream,
so its first samples are largely the evolution's initial population (common random numbers:
the comparison isolates what selection, mutation and crossover add). Its best architecture is
retrained as `searched-random`; result.json's `random_control` compares the two searches'
objective values (the retrained comparison is the report's).

Each search saves its state every generation (random: every batch) to
run_dir/search/<name>.state.json (mixed, all-softmax, all-cosformer, random, nsga2); with
`resume=True` an interrupted search continues to the result an uninterrupted one gives.
Everything ends in run_dir/search/result.json: `searches` (one entry per single-objective
search: space, objective_value, top, history, evaluated), `evaluated` (every search's count of
distinct evaluated architectures, NSGA-II's included), `random_control` and `nsga2` (the front).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..cost import count_flops, count_params
from ..families import family_of
from ..fileio import read_json, write_json
from ..search import CallableObjective, Constraint, NSGA2Config, PredictorObjective, build_searcher, feasible_mask
from ..space import SearchSpace
from ..space.arch import arch_from_dict
from ..space.genes import KIND_GENES
from .config import PipelineConfig
from .predict import LENGTH_FEATURE, load_fitted
from .scoring import build_task, higher_is_better, load_space, load_supernet, score

KIND_LETTERS = {"softmax": "S", "cosformer": "C", "relative": "R", "linear": "L"}
MIXED = "mixed"
RANDOM = "random"  # the random-search control on the mixed space
NSGA2 = "nsga2"


# ---------------------------------------------------------------- describing archs
def layer_stacks(arch) -> dict[str, tuple]:
    """The per-layer lists of any family's architecture, by field name (a ViT's `layers`; a
    Transformer's `encoder_layers` and `decoder_layers`), in field order."""
    return {f.name: getattr(arch, f.name) for f in dataclasses.fields(arch)
            if isinstance(getattr(arch, f.name), tuple) and getattr(arch, f.name)
            and dataclasses.is_dataclass(getattr(arch, f.name)[0])}


def _kinds_of(layer) -> list[str]:
    return [getattr(layer, gene) for gene in KIND_GENES if hasattr(layer, gene)]


def layer_kinds(arch) -> list[str]:
    """Every attention module's kind, stack by stack (decoder layers: self, then cross)."""
    return [kind for layers in layer_stacks(arch).values() for layer in layers for kind in _kinds_of(layer)]


def attention_code(arch) -> str:
    """Compact per-layer attention kinds: 'S C C' for one stack (S softmax, C cosFormer,
    R relative-position softmax, L linear), 'enc S S C | dec S:C C:C' for several (stack names
    shortened to three letters; a layer with several attentions as self:cross)."""
    letter = lambda kind: KIND_LETTERS.get(kind, kind)  # noqa: E731
    stacks = layer_stacks(arch)
    parts = []
    for name, layers in stacks.items():
        code = " ".join(":".join(letter(k) for k in _kinds_of(layer)) for layer in layers)
        parts.append(code if len(stacks) == 1 else f"{name.removesuffix('_layers')[:3]} {code}")
    return " | ".join(parts)


def cosformer_fraction(arch) -> float:
    kinds = layer_kinds(arch)
    return sum(k == "cosformer" for k in kinds) / len(kinds)


def restricted_space(space: SearchSpace, kind: str) -> SearchSpace:
    """The same space with every attention-kind choice narrowed to `kind`."""
    def narrow(node):
        if isinstance(node, dict):
            return {k: [kind] if k in KIND_GENES else narrow(v) for k, v in node.items()}
        return node

    d = narrow(space.to_dict())
    d["name"] = f"{space.name}-all-{kind}"
    return SearchSpace.from_dict(d, source=f"{space.name} restricted to {kind}")


# ---------------------------------------------------------------- the searcher
class Searcher:
    """What the searches of one run share: space, task, predictors, costs and constraints."""

    def __init__(self, cfg: PipelineConfig, need_supernet: bool = False):
        self.cfg = cfg
        if need_supernet or cfg.search.objective == "inherited":
            self.task, self.space, self.supernet = load_supernet(cfg, cfg.supernet_dir)
        else:
            self.task, self.space, self.supernet = build_task(cfg), load_space(cfg, cfg.supernet_dir), None
        self.model_config = self.task.model_config(cfg.model.config)
        self.higher_is_better = higher_is_better(self.task)
        self.score_predictor = load_fitted(cfg, "score")
        self.latency_predictor = load_fitted(cfg, "latency") if cfg.collect.latency else None

    # costs, analytic without embeddings (HAT's convention), and predicted latency
    def flops(self, arch) -> int:
        return count_flops(arch, self.model_config, include_embeddings=False, **self.cfg.cost_options())

    def decode_state_bytes(self, arch, length: int | None = None) -> int | None:
        """fp32 bytes of one sequence's decoding state at the cost options (at `length` when
        given); None: the family does not decode."""
        return family_of(arch).decode_state_bytes(arch, self.model_config, **self.cfg.cost_options(length))

    def params(self, arch) -> int:
        return count_params(arch, self.model_config, include_embeddings=False)

    def predicted_score(self) -> PredictorObjective:
        return PredictorObjective("predicted_score", self.score_predictor, self.space,
                                  higher_is_better=self.higher_is_better)

    def predicted_latency(self) -> PredictorObjective:
        """The latency predictor; one fitted with the length as a feature predicts at the
        pipeline's cost length (which need not be one of the collected lengths)."""
        context = {}
        if self.cfg.collect.latency_lengths:
            length = family_of(self.space).length_of(self.cfg.cost_options())
            context = {LENGTH_FEATURE: float(np.log2(length))}
        return PredictorObjective("latency_ms", self.latency_predictor, self.space, context=context,
                                  higher_is_better=False)

    def inherited_score(self, arch) -> float:
        self.supernet.set_arch(arch)
        return score(self.task, self.supernet, self.cfg.collect.score_limit)["score"]

    def objective(self):
        if self.cfg.search.objective == "inherited":
            return CallableObjective("inherited_score", self.inherited_score, higher_is_better=self.higher_is_better)
        return self.predicted_score()

    def constraints(self) -> list[Constraint]:
        limits = self.cfg.search.constraints
        out = []
        if limits.latency_ms is not None:
            out.append(Constraint(limits.latency_ms, self.predicted_latency()))
        if limits.flops is not None:
            out.append(Constraint.from_callable("flops", limits.flops, self.flops))
        if limits.params is not None:
            out.append(Constraint.from_callable("params", limits.params, self.params))
        if limits.decode_state_bytes is not None:
            out.append(Constraint.from_callable("decode_state_bytes", limits.decode_state_bytes,
                                                self.decode_state_bytes))
        return out

    def describe(self, arch) -> dict[str, Any]:
        """An arch with its predicted/inherited scores and costs (what result.json lists)."""
        entry = {"arch": arch.to_dict(), "attention": attention_code(arch),
                 "cosformer_fraction": cosformer_fraction(arch),
                 "predicted_score": float(self.predicted_score()([arch])[0]),
                 "inherited_score": self.inherited_score(arch) if self.supernet is not None else None,
                 "flops": self.flops(arch), "params": self.params(arch),
                 "decode_state_bytes": self.decode_state_bytes(arch), "predicted_latency_ms": None}
        if self.latency_predictor is not None:
            entry["predicted_latency_ms"] = float(self.predicted_latency()([arch])[0])
        return entry

    def check_constraints(self, archs: list, constraints: list[Constraint], what: str) -> None:
        """Every returned architecture must satisfy every constraint (a bug otherwise)."""
        if archs and not feasible_mask(constraints, archs).all():
            raise RuntimeError(f"{what} returned an architecture that breaks a constraint; this is a bug")


def search_dir(cfg: PipelineConfig) -> Path:
    return Path(cfg.run_dir) / "search"


def result_path(cfg: PipelineConfig) -> Path:
    return search_dir(cfg) / "result.json"


def _settings(cfg: PipelineConfig) -> dict[str, Any]:
    return {"seed": cfg.seed, "search": cfg.to_dict()["search"]}


def run_search(cfg: PipelineConfig, resume: bool = False,
               log: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Run (or continue) the searches of `cfg`; writes and returns result.json's content.
    Raises ValueError (one line) when the mixed search's constraints are infeasible."""
    s = cfg.search
    out = search_dir(cfg)
    states = {name: out / f"{name}.state.json"
              for name in (MIXED, *(f"all-{k}" for k in s.restricted_kinds), RANDOM, NSGA2)}
    if not resume and any(p.exists() for p in states.values()):
        raise ValueError(f"search state already exists in {out}; pass --resume to continue it, or delete {out}")
    searcher = Searcher(cfg, need_supernet=True)
    constraints = searcher.constraints()
    evolution = build_searcher("evolution", s.evolution, cfg.seed)
    spaces = {MIXED: searcher.space}
    if s.restricted:
        spaces.update({f"all-{k}": restricted_space(searcher.space, k)
                       for k in s.restricted_kinds if k in searcher.space.attention_kinds})
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"objective": searcher.objective().name, "higher_is_better": searcher.higher_is_better,
                              "constraints": cfg.search.constraints.limits(), "settings": _settings(cfg),
                              "searches": {}, "nsga2": None, "evaluated": {}, "random_control": None}
    for name, space in spaces.items():
        log(f"search {name}: {evolution.config.generations} generations, population {evolution.config.population}")
        _run_one(searcher, name, space, evolution, constraints, states[name], resume, result, log)
    if s.random.enabled:
        # null budget: the evolution's own count, so both searches pay for the same evaluations
        budget = s.random.budget if s.random.budget is not None else result["searches"][MIXED]["evaluated"]
        control = build_searcher(RANDOM, {"budget": budget, "feasibility_samples": s.evolution.feasibility_samples},
                                 cfg.seed)
        log(f"search {RANDOM}: {budget} distinct architectures")
        _run_one(searcher, RANDOM, searcher.space, control, constraints, states[RANDOM], resume, result, log)
        result["random_control"] = _random_control(result, searcher.higher_is_better)
    if s.nsga2.enabled:
        result["nsga2"] = _pareto(searcher, constraints, states[NSGA2], resume, result)
    write_json(result_path(cfg), result)
    return result


def _run_one(searcher: Searcher, name: str, space: SearchSpace, algorithm, constraints: list[Constraint],
             state_path: Path, resume: bool, result: dict[str, Any], log: Callable[[str], None]) -> None:
    """One single-objective search into result["searches"][name] (and its evaluated count)."""
    try:
        found = algorithm.search(space, searcher.objective(), constraints, state_path=state_path, resume=resume)
    except ValueError as e:
        if name == MIXED:
            raise
        # An all-softmax sub-space may not meet a limit the mixed space meets, and the random
        # control may run out of new feasible architectures: findings, not failures.
        result["searches"][name] = {"space": space.name, "error": str(e), "top": []}
        log(f"search {name}: {e}")
        return
    top = _distinct([a for a, _ in found.top])[: max(searcher.cfg.retrain.top_k, 1)]
    searcher.check_constraints(top, constraints, f"the {name} search")
    result["searches"][name] = {"space": space.name, "objective_value": found.best_score,
                                "top": [searcher.describe(a) for a in top], "history": found.history,
                                "evaluated": found.evaluated}
    result["evaluated"][name] = found.evaluated


def _random_control(result: dict[str, Any], higher_is_better: bool) -> dict[str, Any]:
    """The searches' own objective values (predicted or inherited) of their best architectures;
    None where the random search found nothing."""
    mixed = result["searches"][MIXED]["objective_value"]
    rand = result["searches"][RANDOM].get("objective_value")
    beats = None if rand is None else (mixed > rand if higher_is_better else mixed < rand)
    return {"mixed_objective": mixed, "random_objective": rand, "evolution_beats_random": beats}


def _pareto(searcher: Searcher, constraints: list[Constraint], state_path: Path, resume: bool,
            result: dict[str, Any]) -> list[dict[str, Any]]:
    """NSGA-II front of predicted score against FLOPs or predicted latency (search.pareto_x)."""
    s = searcher.cfg.search
    cost = (searcher.predicted_latency() if s.pareto_x == "latency"
            else CallableObjective("flops", searcher.flops, higher_is_better=False))
    config = NSGA2Config(population=s.nsga2.population, generations=s.nsga2.generations,
                         mutation_prob=s.evolution.mutation_prob, crossover_prob=s.evolution.crossover_prob,
                         feasibility_samples=s.evolution.feasibility_samples)
    found = build_searcher(NSGA2, config, searcher.cfg.seed).search(
        searcher.space, [searcher.predicted_score(), cost], constraints, state_path=state_path, resume=resume)
    front = found.front
    searcher.check_constraints([a for a, _ in front], constraints, "NSGA-II")
    result["evaluated"][NSGA2] = found.evaluated
    return [{"arch": a.to_dict(), "attention": attention_code(a), "predicted_score": v["predicted_score"],
             s.pareto_x: v[cost.name]} for a, v in front]


def _distinct(archs: list) -> list:
    return list(dict.fromkeys(archs))


def load_search_result(cfg: PipelineConfig) -> dict[str, Any] | None:
    """result.json when it exists and was made with this config's search settings; a ValueError
    when it was made with other settings (reusing it would report the wrong search)."""
    path = result_path(cfg)
    if not path.is_file():
        return None
    result = read_json(path, "search result")
    if result.get("settings") != _settings(cfg):
        raise ValueError(f"{path} was made with other search settings (seed, objective, constraints...); "
                         f"delete {path.parent} or choose another run_dir")
    return result


def searched_archs(result: dict[str, Any]) -> list[tuple[str, Any, dict[str, Any]]]:
    """(name, arch, entry) of every searched architecture to retrain: the mixed search's top
    archs (searched-mixed, searched-mixed-2, ...) and the best of each other search: the
    restricted ones (searched-all-softmax, searched-all-cosformer) and the random control
    (searched-random)."""
    out = []
    for name, search in result["searches"].items():
        for rank, entry in enumerate(search["top"] if name == MIXED else search["top"][:1]):
            label = f"searched-{name}" + (f"-{rank + 1}" if rank else "")
            out.append((label, arch_from_dict(entry["arch"]), entry))
    return out
