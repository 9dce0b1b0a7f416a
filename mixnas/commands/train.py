"""`mixnas train` and `mixnas evaluate`: one architecture, trained from scratch and judged.

    mixnas train --config digits_vit [key=value ...]
    mixnas evaluate --checkpoint runs/digits_vit/model   # or a checkpoint_N.pt of a run

A run directory holds `experiment.yaml` (the resolved config), the trainer's checkpoints and
logs, `model/` (arch.yaml + model.pt: the final weights, averaged over the last
`eval.average_last` checkpoints) and `results.json`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..cli import UsageError
from ..dataconf import from_dict, load_yaml
from ..fileio import atomic_write_text, write_json
from ..experiment import Experiment, build_experiment_model, build_task, load_experiment
from ..models import load_model, save_model
from ..train import Trainer, average_checkpoints, list_checkpoints
from ..train.distributed import init_distributed


def train_experiment(exp: Experiment, task=None, arch=None) -> dict[str, Any]:
    """Train, export the (averaged) final model, evaluate it; returns the results dict."""
    task = task or build_task(exp)
    model = build_experiment_model(exp, task, arch)
    save_dir = Path(exp.train.save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(save_dir / "experiment.yaml", yaml.safe_dump(exp.to_dict(), sort_keys=False))
    with Trainer(task.training_task(model, exp.train.seed), exp.train) as trainer:
        summary = trainer.train()
        is_main = trainer.dist.is_main
    if not is_main:
        return summary
    checkpoints = list_checkpoints(save_dir)[-max(exp.eval.average_last, 1):]
    model.load_state_dict(average_checkpoints(checkpoints))
    save_model(model.cpu(), save_dir / "model")
    metrics = evaluate_model(task, model, exp)
    results = {"train": summary, "eval": metrics, "averaged_checkpoints": [str(p) for p in checkpoints]}
    write_json(save_dir / "results.json", results)
    return results


def evaluate_model(task, model, exp: Experiment) -> dict[str, Any]:
    return {"split": exp.eval.split, **task.evaluate(model, exp.eval.split, exp.eval.limit)}


def _cmd_train(args) -> int:
    exp = load_experiment(args.config, args.overrides)
    init_distributed(exp.train.device)  # no-op outside torchrun
    results = train_experiment(exp)
    if "eval" in results:
        print(_summary_line(results["eval"]))
        print(f"model and results in {exp.train.save_dir}")
    return 0


def _summary_line(metrics: dict[str, Any]) -> str:
    keys = [k for k in ("bleu", "tok_bleu", "accuracy", "loss", "nll") if k in metrics]
    return f"{metrics.get('split', '')}: " + ", ".join(f"{k} {metrics[k]:.4g}" for k in keys)


def _cmd_evaluate(args) -> int:
    target = Path(args.checkpoint)
    if not target.exists():
        raise UsageError(f"--checkpoint {target} does not exist")
    run_dir = target if target.is_dir() and (target / "experiment.yaml").exists() else target.parent
    if not (run_dir / "experiment.yaml").is_file():
        run_dir = run_dir.parent  # runs/X/model -> runs/X
    exp_file = run_dir / "experiment.yaml"
    if not exp_file.is_file():
        raise UsageError(f"no experiment.yaml found beside {target}; evaluate a run made by `mixnas train`")
    exp = from_dict(Experiment, load_yaml(exp_file))
    for item in args.overrides:
        key, _, value = item.partition("=")
        if key == "split":
            exp.eval.split = value
        elif key == "limit":
            exp.eval.limit = int(value)
        else:
            raise UsageError(f"evaluate takes split=NAME and limit=N, not {item!r}")
    task = build_task(exp)
    if target.is_dir():
        model_dir = target if (target / "model.pt").exists() else target / "model"
        model = load_model(model_dir)
    else:
        from ..train import load_checkpoint
        model = build_experiment_model(exp, task)
        model.load_state_dict(load_checkpoint(target)["model"])
    metrics = evaluate_model(task, model, exp)
    print(_summary_line(metrics))
    if args.json:
        write_json(Path(args.json), metrics)
    return 0


def add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train one architecture from scratch, then evaluate it")
    p.add_argument("--config", required=True, help="experiment YAML or preset name (mixnas/configs/experiments)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.max_updates=100")
    p.set_defaults(func=_cmd_train)


def add_evaluate_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="BLEU or accuracy of a trained model")
    p.add_argument("--checkpoint", required=True, help="a run's model/ directory, run directory or checkpoint_N.pt")
    p.add_argument("--json", help="also write the metrics to this JSON file")
    p.add_argument("overrides", nargs="*", help="split=NAME, limit=N")
    p.set_defaults(func=_cmd_evaluate)
