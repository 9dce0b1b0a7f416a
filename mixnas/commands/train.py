"""`mixnas train` and `mixnas evaluate`: one architecture, trained from scratch and judged.

    mixnas train --config digits_vit [key=value ...]
    mixnas evaluate --checkpoint runs/digits_vit/model   # or a checkpoint_N.pt of a run

A run directory holds `experiment.yaml` (the resolved config), `arch.yaml`, `fingerprint.json`
(see mixnas.rundir), the trainer's checkpoints and logs, `model/` (arch.yaml + model.pt: the
final weights, averaged over the last `eval.average_last` checkpoints, with the task's
preprocessing and model.json: a self-contained directory `mixnas.load` reads) and `results.json`.
Rerunning the same command resumes an unfinished run and changes nothing in a finished one;
a changed config is refused unless `--restart` is given.
"""
from __future__ import annotations

import dataclasses
import os
import shlex
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import yaml

from ..dataconf import from_dict, load_yaml, to_dict
from ..errors import UsageError
from ..fileio import atomic_write_text, disk_usage, read_json, write_json
from ..experiment import (Experiment, ModelSection, build_experiment_model, build_task, check_split, load_experiment,
                          resolve_arch)
from ..rundir import (FINGERPRINT_FILE, TRAIN_NON_RESULT, check_step, code_version, data_digests, flatten,
                      hold_lock, without)
from ..space.arch import save_arch

ARCH_FILE = "arch.yaml"
from ..models import load_model, save_model
from ..models.io import read_metadata, update_metadata
from ..train import Trainer, average_checkpoints, averaging_sources, list_checkpoints, list_weight_files
from ..train.distributed import init_distributed


def experiment_fingerprint(exp: Experiment, arch) -> dict[str, Any]:
    """What determines the trained weights: task, data (values and file digests), model config,
    the resolved architecture, training settings (not logging ones), and the code version.
    `eval` is left out: another split or limit re-evaluates the trained model, no retraining."""
    values = flatten({"task": exp.task, "data": exp.data, "model": {"config": exp.model.config},
                      "arch": arch.to_dict(), "train": without(flatten(exp.train.to_dict()), "save_dir", *TRAIN_NON_RESULT),
                      "data_files": data_digests(exp.data.get("dir")), "code": code_version()})
    return values


def default_fingerprint(exp: Experiment, arch) -> dict[str, Any]:
    """The fingerprint with every setting at its default (see rundir.same_values)."""
    return experiment_fingerprint(Experiment(task=exp.task, model=ModelSection(arch=exp.model.arch)), arch)


def train_outputs(save_dir: Path) -> list[Path]:
    """Everything a training run writes into its directory (what --restart removes)."""
    names = ("experiment.yaml", ARCH_FILE, "metrics.jsonl", "tensorboard", "model", "results.json",
             "latency.json")  # the last: the pipeline's cached latency of the exported model
    return [*list_checkpoints(save_dir), *list_weight_files(save_dir), *(save_dir / n for n in names)]


def train_experiment(exp: Experiment, task=None, arch=None, restart: bool = False,
                     command: str | None = None, label: str = "") -> dict[str, Any]:
    """Train, export the (averaged) final model, evaluate it; returns the results dict.

    The exported `save_dir/model/` holds the task's preprocessing and model.json (with the eval
    results and `command`, the command line that trained it, when given).

    `label` starts the trainer's and the evaluation's progress lines.

    The run directory is locked for the whole run. Its fingerprint is checked before anything
    is written: a finished run rerun with the same config changes no file and returns its
    results; a changed config is refused (ConfigChanged) unless `restart`."""
    arch = arch or resolve_arch(exp.model.arch)
    save_dir = Path(exp.train.save_dir)
    is_main = int(os.environ.get("RANK", "0")) == 0  # torchrun ranks share rank 0's directory
    with (hold_lock(save_dir, "save_dir") if is_main else nullcontext()):
        if is_main:
            check_step("training", save_dir / FINGERPRINT_FILE, experiment_fingerprint(exp, arch),
                       train_outputs(save_dir), restart, "--restart", default_fingerprint(exp, arch))
        barrier_all()
        finished = _finished_results(save_dir, exp, command)
        if finished is not None:
            return finished
        task = task or build_task(exp)
        model = build_experiment_model(exp, task, arch)
        if is_main:
            atomic_write_text(save_dir / "experiment.yaml", yaml.safe_dump(exp.to_dict(), sort_keys=False))
            save_arch(arch, save_dir / ARCH_FILE)
        # Keep the weights of as many snapshots as eval.average_last averages (not whole checkpoints).
        train_cfg = dataclasses.replace(exp.train, keep_weights=max(exp.train.keep_weights, exp.eval.average_last))
        with Trainer(task.training_task(model, exp.train.seed), train_cfg, label=label) as trainer:
            summary = trainer.train()
            is_main = trainer.dist.is_main
        if not is_main:
            return summary
        checkpoints = averaging_sources(save_dir)[-max(exp.eval.average_last, 1):]
        model.load_state_dict(average_checkpoints(checkpoints))
        save_model(model.cpu(), save_dir / "model", task=task, metadata={"command": command})
        metrics = evaluate_model(task, model, exp)
        update_metadata(save_dir / "model", eval=metrics)
        results = {"train": summary, "eval": metrics, "eval_settings": to_dict(exp.eval),
                   "averaged_checkpoints": [str(p) for p in checkpoints]}
        write_json(save_dir / "results.json", results)
        return results


def _finished_results(save_dir: Path, exp: Experiment, command: str | None = None) -> dict[str, Any] | None:
    """results.json of a finished run with the same fingerprint, re-evaluated first when the
    eval settings changed; None when the run has not finished."""
    path = save_dir / "results.json"
    if not path.is_file():
        return None
    results = read_json(path, "training results")
    if results.get("eval_settings") == to_dict(exp.eval):
        return results
    averaged = [Path(p) for p in results["averaged_checkpoints"]]
    if len(averaged) != max(exp.eval.average_last, 1):
        # Another average needs other checkpoints; they may be pruned. Say so rather than guess.
        available = averaging_sources(save_dir)[-max(exp.eval.average_last, 1):]
        if len(available) < max(exp.eval.average_last, 1):
            raise UsageError(f"eval.average_last={exp.eval.average_last} but {save_dir} keeps the weights of only "
                             f"{len(available)} snapshot(s) (train.keep_weights); retrain with --restart "
                             f"and train.keep_weights={exp.eval.average_last}")
        averaged = available
    task = build_task(exp)
    model = build_experiment_model(exp, task, resolve_arch(str(save_dir / ARCH_FILE)))
    model.load_state_dict(average_checkpoints(averaged))
    previous = read_metadata(save_dir / "model") or {}
    save_model(model.cpu(), save_dir / "model", task=task,
               metadata={"command": previous.get("command") or command})
    results.update(eval=evaluate_model(task, model, exp), eval_settings=to_dict(exp.eval),
                   averaged_checkpoints=[str(p) for p in averaged])
    update_metadata(save_dir / "model", eval=results["eval"])
    write_json(path, results)
    return results


def barrier_all() -> None:
    """Under torchrun, ranks wait until rank 0 has checked the run directory."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def evaluate_model(task, model, exp: Experiment) -> dict[str, Any]:
    return {"split": exp.eval.split, **task.evaluate(model, exp.eval.split, exp.eval.limit)}


def _cmd_train(args) -> int:
    exp = load_experiment(args.config, args.overrides)
    init_distributed(exp.train.device)  # no-op outside torchrun
    command = shlex.join(["mixnas", "train", "--config", args.config, *(["--restart"] if args.restart else []),
                          *args.overrides])
    results = train_experiment(exp, restart=args.restart, command=command)
    if "eval" in results:
        print(_summary_line(results["eval"], exp.family.test_metric))
        save_dir = exp.train.save_dir
        print(f"model and results in {save_dir} ({disk_usage(save_dir)} on disk: {len(list_checkpoints(save_dir))} "
              f"full checkpoint(s), train.keep_last; weights of {len(list_weight_files(save_dir))} more for "
              f"averaging, train.keep_weights)")
    return 0


def _summary_line(metrics: dict[str, Any], first: str) -> str:
    """'split: metric v, ...' with the family's test metric `first`, then the other numbers."""
    keys = [k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    keys = sorted(keys, key=lambda k: k != first)
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
            exp.eval.split = check_split(value, exp, key="split")
        elif key == "limit":
            if not value.isdigit() or int(value) < 1:
                raise UsageError(f"limit: expected a positive integer, got {value!r}")
            exp.eval.limit = int(value)
        else:
            raise UsageError(f"evaluate takes split=NAME and limit=N, not {item!r}")
    task = build_task(exp)
    if target.is_dir():
        model_dir = target if (target / "model.pt").exists() else target / "model"
        model = load_model(model_dir)
    else:
        from ..train.checkpoint import load_weights
        model = build_experiment_model(exp, task)
        model.load_state_dict(load_weights(target))
    metrics = evaluate_model(task, model, exp)
    print(_summary_line(metrics, exp.family.test_metric))
    if args.json:
        write_json(Path(args.json), metrics)
    return 0


def add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train one architecture from scratch, then evaluate it")
    p.add_argument("--config", required=True, help="experiment YAML or preset name (a family's configs/experiments)")
    p.add_argument("--restart", action="store_true",
                   help="when save_dir holds a run made with another config: remove it and train anew")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.max_updates=100")
    p.set_defaults(func=_cmd_train)


def add_evaluate_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="the task's metrics (BLEU, accuracy, loss...) of a trained model")
    p.add_argument("--checkpoint", required=True, help="a run's model/ directory, run directory, checkpoint_N.pt or weights_N.pt")
    p.add_argument("--json", help="also write the metrics to this JSON file")
    p.add_argument("overrides", nargs="*", help="split=NAME, limit=N")
    p.set_defaults(func=_cmd_evaluate)
