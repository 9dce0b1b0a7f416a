"""mixnas: neural architecture search over Transformers whose attention kind is searched per layer.

The public API (imported on first use, so `import mixnas` and the CLI's --help stay fast):

    run the pipeline     load_pipeline_config, run_pipeline
    one architecture     load_experiment, train_experiment, load_model, save_model
    a trained model      load (translate, predict, generate with a saved model directory)
    spaces and supernets SearchSpace, build_task, build_supernet, load_supernet, score
    search               run_searcher, inherited_objective, Constraint, build_searcher, searchers
    cost                 count_params, count_flops, measure_latency
    extending            families, family_of, register_family, register_kind (attention),
                         register_searcher

See README.md ("Python API") for a complete example.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> "module:attribute"
_API = {
    "load_pipeline_config": "mixnas.pipeline.config:load_pipeline_config",
    "run_pipeline": "mixnas.pipeline.run:run_pipeline",
    "load_experiment": "mixnas.experiment:load_experiment",
    "train_experiment": "mixnas.commands.train:train_experiment",
    "load_model": "mixnas.models.io:load_model",
    "save_model": "mixnas.models.io:save_model",
    "load": "mixnas.api:load",
    "SearchSpace": "mixnas.space.search_space:SearchSpace",
    "build_task": "mixnas.api:build_task",
    "build_supernet": "mixnas.api:build_supernet",
    "load_supernet": "mixnas.api:load_supernet",
    "score": "mixnas.pipeline.scoring:score",
    "run_searcher": "mixnas.api:run_searcher",
    "inherited_objective": "mixnas.api:inherited_objective",
    "Constraint": "mixnas.search.objectives:Constraint",
    "build_searcher": "mixnas.search.searcher:build_searcher",
    "searchers": "mixnas.search.searcher:searchers",
    "register_searcher": "mixnas.search.searcher:register_searcher",
    "count_params": "mixnas.cost.params:count_params",
    "count_flops": "mixnas.cost.flops:count_flops",
    "measure_latency": "mixnas.cost.latency:measure_latency",
    "families": "mixnas.families.registry:families",
    "family_of": "mixnas.families.registry:family_of",
    "register_family": "mixnas.families.registry:register",
    "register_kind": "mixnas.attention.registry:register",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'mixnas' has no attribute {name!r}")
    module, attribute = _API[name].split(":")
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
