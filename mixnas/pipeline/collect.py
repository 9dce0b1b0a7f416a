"""Performance and cost collection (pipeline steps 2-3): N random sub-networks scored with
inherited supernet weights on a fixed validation subset, with their FLOPs, parameters and
measured latency, written to a CSV that the predictors read.

The architectures are the first N of a stream named by the seed, so a run is reproducible
and a longer run extends a shorter one. The CSV is rewritten atomically every `collect.chunk`
rows; a killed collection keeps every row already written and `collect` continues after the
last one (after checking that those rows are the architectures this config would draw).

Columns: index, arch (JSON of arch.to_dict()), score (the task's search metric: validation
accuracy for classification, loss per token for translation), val_<metric> for each metric
of the scoring call, flops / flops_no_emb and params / params_no_emb (mixnas.cost, with and
without embeddings and output layer; FLOPs and latency at the pipeline's `cost` options, e.g.
a sequence length), latency_ms / latency_std_ms (empty when not measured),
then one feat:<name> column per entry of space.encode(arch).

latency_ms@L (one column per collect.latency_lengths entry): the latency at sequence length L
(the family's `length_options`), for the latency predictor's length feature.

latency_ms is the collect.latency_* protocol's statistic (collect.latency_stat of
collect.latency_runs runs on collect.latency_clock, in collect.latency_runtime: PyTorch or the
model's ONNX export in ONNX Runtime), latency_std_ms the spread of the trimmed runs. The protocol (LatencyResult.protocol) is written beside the CSV, in <stem>.latency.json
(`latency_protocol_path`); a collection continues only rows measured with the same protocol.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ..cost import count_flops, count_params, measure_latency, protocol_differences
from ..families import family_for_task
from ..fileio import atomic_write_text, read_json, write_json
from ..space import arch_from_dict
from .config import PipelineConfig
from .scoring import fixed_archs, load_supernet, score

COST_COLUMNS = ("flops", "flops_no_emb", "params", "params_no_emb", "latency_ms", "latency_std_ms")


def collect_columns(space, task: str, lengths: list[int] | tuple[int, ...] = ()) -> list[str]:
    """The CSV header: the task's validation metrics, costs (with the latency at each of
    collect.latency_lengths), then the arch features."""
    metrics = family_for_task(task).val_metrics
    return (["index", "arch", "score"] + [f"val_{m}" for m in metrics] + list(COST_COLUMNS)
            + [length_column(n) for n in lengths] + [f"feat:{name}" for name in space.feature_names()])


def length_column(length: int) -> str:
    """The CSV column of the latency measured at sequence length `length`."""
    return f"latency_ms@{length}"


def collect(cfg: PipelineConfig, supernet_path: str | Path, out_csv: str | Path,
            num_archs: int | None = None, progress=None) -> dict[str, Any]:
    """Score `num_archs` (default collect.num_archs) sub-networks into `out_csv`, keeping and
    continuing after the rows it already holds. Returns {"rows", "new_rows", "path"}."""
    c = cfg.collect
    total = c.num_archs if num_archs is None else num_archs
    if total < 1:
        raise ValueError(f"the number of architectures must be >= 1, got {total}")
    task, space, supernet = load_supernet(cfg, supernet_path)
    model_config = task.model_config(cfg.model.config)
    columns = collect_columns(space, cfg.task, c.latency_lengths)
    archs = fixed_archs(space, cfg.seed, total, "collect")
    out = Path(out_csv)
    rows = read_rows(out, columns) if out.exists() else []
    for row, arch in zip(rows, archs):
        if arch_from_dict(json.loads(row["arch"])) != arch:
            raise ValueError(f"{out} row {row['index']} holds another architecture than this config draws "
                             f"(different seed or space); move it away or choose another --out")
    rows = rows[:total]
    check_latency_protocol(out, rows, cfg)
    kept = len(rows)
    if progress is not None and kept < total:
        progress(kept, total)  # the starting point of the rate
    for index in range(kept, total):
        row, protocol = _row(index, archs[index], task, space, supernet, model_config, cfg)
        if protocol is not None and index == kept:  # before the first CSV row it describes
            write_json(latency_protocol_path(out), protocol)
        rows.append(row)
        if len(rows) % c.chunk == 0 or index == total - 1:
            write_rows(out, columns, rows)
            if progress is not None:
                progress(len(rows), total)
    if kept == total:
        write_rows(out, columns, rows)  # e.g. a shorter re-run truncating the table
    return {"rows": len(rows), "new_rows": len(rows) - kept, "path": str(out)}


def latency_protocol_path(out_csv: str | Path) -> Path:
    """Where the latency protocol of a collect CSV is recorded: <stem>.latency.json beside it."""
    return Path(out_csv).with_suffix(".latency.json")


def check_latency_protocol(out_csv: str | Path, rows: list[dict[str, str]], cfg: PipelineConfig) -> None:
    """One-line ValueError when `rows` (of `out_csv`) hold latencies that were not measured with the
    collect.latency_* protocol of `cfg` (or whose protocol was not recorded)."""
    if not cfg.collect.latency or not any(row["latency_ms"] != "" for row in rows):
        return
    path = latency_protocol_path(out_csv)
    recorded = read_json(path, "latency protocol") if path.is_file() else None
    differences = protocol_differences(recorded, **cfg.collect.latency_options())
    if differences:
        raise ValueError(f"{out_csv} holds latencies measured with another protocol than collect.latency_* "
                         f"({'; '.join(differences)}, recorded in {path}); move it away or choose another --out")


def _row(index: int, arch, task, space, supernet, model_config,
         cfg: PipelineConfig) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(CSV row, latency protocol or None when latency is not measured)."""
    c = cfg.collect
    protocol = None
    supernet.set_arch(arch)
    metrics = score(task, supernet, c.score_limit)
    row: dict[str, Any] = {"index": index, "arch": json.dumps(arch.to_dict(), sort_keys=True),
                           "score": metrics["score"]}
    row.update({f"val_{m}": metrics[m] for m in family_for_task(cfg.task).val_metrics})
    cost = cfg.cost_options()
    row.update(flops=count_flops(arch, model_config, **cost),
               flops_no_emb=count_flops(arch, model_config, include_embeddings=False, **cost),
               params=count_params(arch, model_config),
               params_no_emb=count_params(arch, model_config, include_embeddings=False),
               latency_ms="", latency_std_ms="")
    if c.latency:
        model = supernet.extract(arch)
        result = measure_latency(model, **c.latency_options(), **cost)
        row.update(latency_ms=result.ms, latency_std_ms=result.ms_std)
        protocol = result.protocol
        for n in c.latency_lengths:
            row[length_column(n)] = measure_latency(model, **c.latency_options(), **cfg.cost_options(n)).ms
    row.update({f"feat:{n}": float(v) for n, v in zip(space.feature_names(), space.encode(arch))})
    return row, protocol


def write_rows(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """The whole table, atomically: readers see the old file or the complete new one."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def read_rows(path: Path, columns: list[str] | None = None) -> list[dict[str, str]]:
    """Rows of a collect CSV as strings; checks the header when `columns` is given, and every
    row (all columns, index, arch, numbers) so that a damaged file fails here, naming the row."""
    return [raw for raw, _ in _read_checked(Path(path), columns)]


def load_collected(path: str | Path) -> list[dict[str, Any]]:
    """A collect CSV with numbers parsed (floats; None for empty latency) and the arch decoded."""
    return [parsed for _, parsed in _read_checked(Path(path), None)]


def _fix(path: Path) -> str:
    return f"delete {path} to collect again, or rerun collect with another --out"


def _read_checked(path: Path, columns: list[str] | None) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """(raw strings, parsed values) of every row; one-line ValueErrors naming file and row."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames
            if columns is not None and header != columns:
                raise ValueError(f"{path} has columns {header}, not those of this config's collection "
                                 f"(another task or space?); move it away or choose another --out")
            missing = [c for c in ("index", "arch", "score") if c not in (header or [])]
            if missing:
                raise ValueError(f"{path} is not a collect table (no {', '.join(missing)} column); {_fix(path)}")
            rows = []
            for raw in reader:
                rows.append((raw, _parse_row(raw, len(rows), path)))
    except csv.Error as e:  # NUL bytes, an oversized field, a quote cut off by truncation
        # line_num counts the lines parsed before the failing one
        raise ValueError(f"{path} line {reader.line_num + 1} is not valid CSV ({e}); {_fix(path)}") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text (byte {e.start}); {_fix(path)}") from None
    return rows


def _parse_row(raw: dict[str, Any], i: int, path: Path) -> dict[str, Any]:
    where = f"{path} row {i + 1}"
    if None in raw:  # DictReader's key for cells beyond the header
        raise ValueError(f"{where} has more cells than the header's {len(raw) - 1} columns; {_fix(path)}")
    if any(v is None for v in raw.values()):  # DictReader's value for cells the line lacks
        raise ValueError(f"{where} has fewer cells than the header's {len(raw)} columns (a truncated line?); "
                         f"{_fix(path)}")
    if raw["index"] != str(i):
        raise ValueError(f"{where} has index {raw['index']!r}, expected {i}; the file is corrupt; {_fix(path)}")
    parsed: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "arch":
            parsed[key] = _parse_arch(value, where, path)
        elif key == "index":
            parsed[key] = i
        else:
            try:
                parsed[key] = float(value) if value != "" else None
            except ValueError:
                raise ValueError(f"{where}: {key} is {value!r}, not a number; {_fix(path)}") from None
    return parsed


def _parse_arch(value: str, where: str, path: Path):
    try:
        return arch_from_dict(json.loads(value))
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: arch is not valid JSON ({e.msg}); {_fix(path)}") from None
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        cause = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"{where}: arch is not an architecture ({cause}); {_fix(path)}") from None
