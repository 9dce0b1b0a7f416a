"""`mixnas train-supernet`, `mixnas collect` and `mixnas rank-check`.

    mixnas train-supernet --config digits [key=value ...]     # torchrun for DDP
    mixnas collect --config digits [--num-archs N] [--out PATH] [key=value ...]
    mixnas rank-check --config digits --k 8 --updates 300 [key=value ...]

All three read the same pipeline config (a preset NAME under a family's configs/pipelines/, or a path); collect
and rank-check use the supernet trained into `run_dir/supernet/` unless --supernet is given.
"""
from __future__ import annotations

from pathlib import Path

from ..fileio import write_json
from ..progress import Progress
from .config import load_pipeline_config
from .steps import add_restart_flag, guard_step, locked_run_dir


def _cmd_train_supernet(args) -> int:
    from ..train.distributed import init_distributed
    from .supernet_training import train_supernet
    cfg = load_pipeline_config(args.config, args.overrides)
    init_distributed(cfg.supernet.train.device)  # no-op outside torchrun
    with locked_run_dir(cfg):
        guard_step(cfg, "train-supernet", args.restart)
        summary = train_supernet(cfg)
    stop = " (RankNAS early stop)" if summary["stopped_early"] else ""
    print(f"supernet trained for {summary['step']} updates{stop}; weights in {summary['supernet']}")
    return 0


def _cmd_collect(args) -> int:
    from .collect import collect
    cfg = load_pipeline_config(args.config, args.overrides)
    out = Path(args.out) if args.out else Path(cfg.run_dir) / "collect.csv"
    with locked_run_dir(cfg):
        if not args.out and not args.supernet:  # the run's own table: guarded like `mixnas run`'s step
            guard_step(cfg, "collect", args.restart)
        line = Progress("collected", cfg.collect.num_archs)
        result = collect(cfg, args.supernet or cfg.supernet_dir, out, args.num_archs,
                         progress=lambda done, total: print(line(done, total), flush=True))
    print(f"{result['rows']} architectures ({result['new_rows']} new) in {result['path']}")
    return 0


def _cmd_rank_check(args) -> int:
    import torch
    from .rank_check import rank_check
    cfg = load_pipeline_config(args.config, args.overrides)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    k = cfg.rank_check.k if args.k is None else args.k
    updates = cfg.rank_check.updates if args.updates is None else args.updates
    with locked_run_dir(cfg):
        result = rank_check(cfg, args.supernet or cfg.supernet_dir, k, updates)
    for row in result["rows"]:
        print(f"arch {row['index']}: {row['attention']:<12} {row['flops'] / 1e6:7.3f} MFLOPs  inherited "
              f"{result['metric']} {row['inherited']:.4g}, retrained {row['retrained']:.4g}")

    def fmt(value, ci) -> str:
        if value is None:
            return "undefined (constant scores)"
        return f"{value:.3f}" + ("" if ci is None else f" [95% CI {ci[0]:.3f}, {ci[1]:.3f}]")

    print(f"Kendall tau inherited vs retrained ({result['n']} archs, {result['retrain_updates']} updates): "
          f"{result['metric']} {fmt(result['tau'], result['ci95'])}, loss {fmt(result['tau_loss'], result['tau_loss_ci95'])}")
    print(f"Spearman rho: {result['metric']} {fmt(result['spearman'], result['spearman_ci95'])}, "
          f"loss {fmt(result['spearman_loss'], result['spearman_loss_ci95'])}")
    if args.json:
        write_json(args.json, result, allow_nan=True)
    return 0


def _common(p) -> None:
    p.add_argument("--config", required=True, help="pipeline YAML or preset name (a family's configs/pipelines)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. supernet.train.max_updates=100")


def add_train_supernet_parser(sub) -> None:
    p = sub.add_parser("train-supernet", help="train the weight-sharing supernet of a search space")
    _common(p)
    add_restart_flag(p, "train-supernet")
    p.set_defaults(func=_cmd_train_supernet)


def add_collect_parser(sub) -> None:
    p = sub.add_parser("collect", help="score random sub-networks with inherited weights; FLOPs, params, latency")
    _common(p)
    p.add_argument("--num-archs", type=int, default=None, help="architectures to score (default collect.num_archs)")
    p.add_argument("--out", help="CSV to write or continue (default run_dir/collect.csv)")
    p.add_argument("--supernet", help="supernet directory or supernet.pt (default run_dir/supernet)")
    add_restart_flag(p, "collect")
    p.set_defaults(func=_cmd_collect)


def add_rank_check_parser(sub) -> None:
    p = sub.add_parser("rank-check", help="Kendall tau between inherited and briefly retrained scores")
    _common(p)
    p.add_argument("--k", type=int, default=None,
                   help="architectures, spread over FLOPs and attention kinds (default rank_check.k)")
    p.add_argument("--updates", type=int, default=None,
                   help="training updates per architecture, from scratch (default rank_check.updates)")
    p.add_argument("--supernet", help="supernet directory or supernet.pt (default run_dir/supernet)")
    p.add_argument("--json", help="also write the result to this JSON file")
    p.set_defaults(func=_cmd_rank_check)
