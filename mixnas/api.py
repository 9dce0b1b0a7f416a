"""The Python API: the few functions a user needs beyond what `mixnas.<name>` re-exports.

    import mixnas
    cfg = mixnas.load_pipeline_config("micro", ["run_dir=runs/demo"])
    results = mixnas.run_pipeline(cfg)                       # the whole pipeline, as `mixnas run`
    task, space, supernet = mixnas.load_supernet(cfg)        # its trained supernet
    result = mixnas.run_searcher(space, mixnas.inherited_objective(task, supernet), searcher="random",
                                 options={"budget": 50})

A trained model (a `mixnas train` run's model/ directory, or its run directory):

    translator = mixnas.load("runs/multi30k_hat/model")
    print(translator.translate(["A man is riding a bike."]))

Every name of `mixnas.__all__` is imported on first use, so `import mixnas` stays instant.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from .dataconf import from_dict
from .families import family_for_task, family_of


def build_task(task: str, data: dict[str, Any] | None = None):
    """The task object of a registered family (`task` as in configs: "classification",
    "translation", "language-modeling") with its typed `data` section, e.g.
    build_task("classification", {"name": "digits"})."""
    family = family_for_task(task)
    return family.build_task(from_dict(family.data_config_class, data or {}, "data"))


def build_supernet(space, model_config, share_projections: bool = False):
    """The weight-sharing supernet holding every architecture of `space` (untrained), for a
    model config such as `task.model_config({...})`."""
    return family_of(space).build_supernet(space, model_config, share_projections=share_projections)


def load_supernet(cfg, path: str | Path | None = None):
    """(task, space, supernet with trained weights) of a pipeline config's run
    (`path`: a supernet directory or supernet.pt; default the run's own)."""
    from .pipeline.scoring import load_supernet as load
    return load(cfg, cfg.supernet_dir if path is None else path)


def inherited_objective(task, supernet, limit: int | None = 256):
    """An objective scoring an architecture with the supernet's weights on the head of the
    validation split (`limit` examples or batches), the task's search metric and direction."""
    from .pipeline.scoring import score
    from .search import CallableObjective
    metric, higher = task.score_key()

    def evaluate(arch) -> float:
        supernet.set_arch(arch)
        return score(task, supernet, limit)["score"]

    return CallableObjective(f"inherited_{metric}", evaluate, higher_is_better=higher)


def run_searcher(space, objective, constraints: Sequence[Any] = (), searcher: str = "evolution",
           options: dict[str, Any] | None = None, seed: int = 0, state_path: str | Path | None = None,
           resume: bool = False):
    """Run a registered searcher (evolution, nsga2, random) on `space`; returns a SearchResult
    (`best`, `best_score`, `top`, ...). `objective` is an Objective or a function arch -> float
    (maximised); `constraints` are `Constraint`s or (name, function, limit) triples; `options`
    is the searcher's YAML section as a dict."""
    from .search import CallableObjective, Constraint, build_searcher
    if callable(objective) and not hasattr(objective, "evaluate"):
        objective = CallableObjective("objective", objective)
    limits = [c if isinstance(c, Constraint) else Constraint.from_callable(c[0], c[2], c[1]) for c in constraints]
    return build_searcher(searcher, options, seed=seed).search(space, objective, limits, state_path=state_path,
                                                                resume=resume)



def load(directory: str | Path, device: str = "cpu"):
    """The inference object of a saved model directory (a training run directory works too):
    translation -> `.translate(sentences)`, classification -> `.predict(images)` and
    `.probabilities(images)`, language modeling -> `.generate(prompt, tokens, ...)`. The
    directory must hold the task's preprocessing, as `mixnas train` and
    `save_model(model, dir, task=task)` write it; `.model` is the loaded nn.Module."""
    from .models.io import load_inference
    return load_inference(directory, device)
