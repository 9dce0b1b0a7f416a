"""`mixnas export`: a trained model as an ONNX graph or a torch.export program.

    mixnas export --model runs/vit/model --format onnx --output vit.onnx
    mixnas export --model runs/lm/model --format torch-export --output lm.pt2

The model's family decides what is exported (`Family.export_program`): a ViT's forward on
(batch, C, H, W) images with a dynamic batch; a language model's full causal forward on
(batch, length) token ids with dynamic batch and length (length <= the context); a translation
model's two programs, its encoder and one incremental decoder step, written side by side
(mt.onnx -> mt.encoder.onnx and mt.decoder_step.onnx; mixnas/families/transformer/export.py
lists their inputs and outputs). Each program is
traced once with `torch.export.export` inside `mixnas.attention.export_mode()` (every attention
kind as plain tensor operations); `onnx` converts it with `torch.onnx.export(..., dynamo=True)`
(needs the packages onnx and onnxscript; onnxruntime runs the result), `torch-export` writes it
with `torch.export.save` (load it with `torch.export.load(path).module()`).
"""
from __future__ import annotations

import argparse
from pathlib import Path

FORMATS = ("onnx", "torch-export")
SUFFIX = {"onnx": ".onnx", "torch-export": ".pt2"}
HELP = "write a trained model as an ONNX graph or a torch.export program"


def trace_programs(model) -> dict:
    """{part: (torch.export ExportedProgram, the family's ExportProgram)} of a standalone model;
    part is None for a family that exports one program, else each of its programs' names
    (translation: "encoder" and "decoder_step")."""
    import torch

    from .attention import export_mode
    from .families import family_of

    programs = family_of(model).export_program(model.eval())
    if not isinstance(programs, dict):
        programs = {None: programs}
    traced = {}
    with export_mode(), torch.no_grad():
        for part, program in programs.items():
            exported = torch.export.export(program.module, program.args, dynamic_shapes=program.dynamic_shapes)
            traced[part] = exported, program
    return traced


def trace(model):
    """(torch.export ExportedProgram, the family's ExportProgram) of a standalone model whose
    family exports one program (else a ValueError: use `trace_programs`)."""
    traced = trace_programs(model)
    if list(traced) != [None]:
        raise ValueError(f"this model exports several programs ({', '.join(traced)}); use trace_programs")
    return traced[None]


def part_path(output: str | Path, part: str | None) -> Path:
    """The file of one program: `output` itself, or `<stem>.<part><suffix>` beside it."""
    output = Path(output)
    return output if part is None else output.with_name(f"{output.stem}.{part}{output.suffix}")


def export_model(model, output: str | Path, format: str = "onnx") -> Path | tuple[Path, ...]:
    """Write `model` (a standalone model of any family whose `export_program` is defined) to
    `output` in `format` ("onnx" or "torch-export"); returns the path. A family exporting several
    programs (translation: encoder + decoder step) writes each to `part_path(output, part)`
    (mt.onnx -> mt.encoder.onnx, mt.decoder_step.onnx) and returns their paths."""
    paths = export_parts(model, output, format)
    return paths[None] if list(paths) == [None] else tuple(paths.values())


def export_parts(model, output: str | Path, format: str = "onnx") -> dict:
    """`export_model`, returning {part: path} (part None for a one-program family), for callers
    that run the programs by name (the onnxruntime latency workloads)."""
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; use one of {', '.join(FORMATS)}")
    if format == "onnx":
        _require_onnx()
    traced = trace_programs(model)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    from .fileio import atomic_write
    paths = {}
    for part, (exported, program) in traced.items():
        path = part_path(output, part)
        if format == "torch-export":
            import torch
            atomic_write(path, lambda tmp, e=exported: torch.export.save(e, tmp))
        else:
            atomic_write(path, lambda tmp, e=exported, p=program: _write_onnx(e, p, tmp))
        paths[part] = path
    return paths


def _write_onnx(exported, program, path: Path) -> None:
    import logging
    import warnings

    import torch
    # The exporter logs a warning per torchvision operator it cannot register when torchvision is
    # missing; none of them is used here.
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onnx_program = torch.onnx.export(exported, f=None, dynamo=True, verbose=False,
                                             input_names=list(program.input_names),
                                             output_names=list(program.output_names))
    finally:
        registration.setLevel(level)
    onnx_program.save(str(path))


def _require_onnx() -> None:
    import importlib.util
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError(f"ONNX export needs the package(s) {', '.join(missing)}: pip install onnx onnxscript "
                         f"(onnxruntime to run the result), or use --format torch-export")


def run(args: argparse.Namespace) -> int:
    from .models.io import load_model, model_directory

    directory = model_directory(args.model)
    model = load_model(directory)
    output = Path(args.output) if args.output else directory / f"model{SUFFIX[args.format]}"
    paths = export_model(model, output, args.format)
    for path in paths if isinstance(paths, tuple) else (paths,):
        print(f"wrote {path}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("export", help=HELP,
                       description="Trace a trained model (its family's inference forward) and write it as an "
                                   "ONNX graph or a torch.export program (.pt2).")
    p.add_argument("--model", required=True, help="a saved model directory (arch.yaml + model.pt) or its run directory")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="onnx (default) or torch-export (a .pt2 file)")
    p.add_argument("--output", default=None,
                   help="the file to write (default: model.onnx or model.pt2 in the model directory)")
    p.set_defaults(func=run)
