"""Encoder-decoder Transformer for translation: what the pipeline needs to know about it.

Architecture `TransformerArch` (arch.py), space `TransformerSpace` (space.py), model
`Transformer` (model.py), supernet `SupernetTransformer` (supernet.py), task
`TranslationTask` (task/task.py: SentencePiece, label-smoothed loss, beam search,
sacreBLEU). Cost options: source and target length, and the beam of decoding; the latency
workload is HAT's (encoder once, then `tgt_len` incremental decoder steps on `beam` hypotheses).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..family import Family
from .arch import TransformerArch
from .config import TransformerConfig
from .space import TransformerSpace
from .task.task import TranslationTaskConfig


class TransformerFamily(Family):
    name = "transformer"
    task = "translation"
    arch_class = TransformerArch
    space_class = TransformerSpace
    data_config_class = TranslationTaskConfig
    model_config_class = TransformerConfig
    test_metric = "bleu"
    val_metrics = ("loss", "nll")
    # HAT's protocol: decoding FLOPs and latency on 4 hypotheses (the forward FLOPs ignore beam)
    cost_options = {"src_len": 30, "tgt_len": 30, "beam": 4}

    def build_task(self, data_config: TranslationTaskConfig):
        from .task.task import TranslationTask
        return TranslationTask(data_config)

    def build_model(self, arch: TransformerArch, config: TransformerConfig):
        from .model import Transformer
        return Transformer(arch, config)

    def build_supernet(self, space: TransformerSpace, config: TransformerConfig, share_projections: bool = False):
        from .supernet import SupernetTransformer
        return SupernetTransformer.from_space(space, config, share_projections=share_projections)

    def split_names(self, data_config: TranslationTaskConfig) -> list[str] | None:
        """The `{split}.{src_lang}` files in data.dir (None while that directory does not exist:
        the data loader reports that itself, with its fix)."""
        directory = Path(data_config.dir)
        if not directory.is_dir():
            return None
        suffix = f".{data_config.src_lang}"
        return sorted(p.name[: -len(suffix)] for p in directory.glob(f"*{suffix}")
                      if p.is_file() and not p.name.startswith("."))

    # ------------------------------------------------------------ using a trained model
    def save_assets(self, task, directory) -> None:
        """The task's SentencePiece model (spm.model) and preprocessing.json (beam settings...)."""
        from .inference import save_translation_assets
        save_translation_assets(task, Path(directory))

    def inference(self, model, directory):
        """A `Translator`: `.translate(sentences, beam=..., lenpen=...)` -> translations."""
        from .inference import Translator
        return Translator(model, directory)

    def export_program(self, model):
        """Two programs: "encoder" and "decoder_step" (one incremental step with the
        self-attention states as explicit inputs and outputs); see transformer/export.py."""
        from .export import export_programs
        return export_programs(model)

    # ------------------------------------------------------------ cost
    def params_breakdown(self, arch: TransformerArch, config: Any) -> dict[str, int]:
        from .cost import transformer_params_breakdown
        return transformer_params_breakdown(arch, config)

    def flops_breakdown(self, arch: TransformerArch, config: Any, **options: int) -> dict[str, int]:
        """Teacher-forced forward: encoder over src_len tokens, decoder over tgt_len."""
        from .cost import translation_flops
        o = self.options(options)
        return translation_flops(arch, config, o["src_len"], o["tgt_len"])

    def decode_flops_breakdown(self, arch: TransformerArch, config: Any, **options: int) -> dict[str, int]:
        """Encoder once at batch 1, then tgt_len incremental decoder steps on `beam` hypotheses."""
        from .cost import decode_flops
        o = self.options(options)
        return decode_flops(arch, config, o["src_len"], o["tgt_len"], o["beam"])

    def decode_state_breakdown(self, arch: TransformerArch, config: Any, **options: int) -> dict[str, int]:
        """One hypothesis after tgt_len steps over src_len source tokens (beam excluded)."""
        from .cost import decode_state_breakdown
        o = self.options(options)
        return decode_state_breakdown(arch, config, o["src_len"], o["tgt_len"])

    def length_options(self, length: int) -> dict[str, int]:
        """Source and target of `length` tokens."""
        return {"src_len": length, "tgt_len": length}

    onnxruntime_unsupported = None

    def latency_workload(self, model, generator, device, **options: int):
        src, o, protocol = self._latency_source(model, generator, options)
        src = src.to(device)
        return (lambda: translation_step(model, src, o["tgt_len"], o["beam"])), protocol

    def onnxruntime_workload(self, model, open_sessions, generator, **options: int):
        """The same source, encoder once and `tgt_len` beam-reordered decoder steps through the
        exported encoder and decoder_step programs (ort_latency.py)."""
        from .ort_latency import onnxruntime_translation_step
        src, o, protocol = self._latency_source(model, generator, options)
        sessions = open_sessions()
        return onnxruntime_translation_step(model, sessions, src.numpy(), o["tgt_len"], o["beam"]), protocol

    def _latency_source(self, model, generator, options: dict[str, int]):
        """(the random batch-1 source of the latency workload, the options, its protocol description)."""
        import torch
        o = self.options(options)
        cfg = model.config
        low = max(cfg.pad_id, cfg.bos_id, cfg.eos_id) + 1  # no special tokens in the random source
        if cfg.src_vocab <= low:
            raise ValueError(f"src_vocab={cfg.src_vocab} has no ordinary tokens beyond the special ids")
        src = torch.randint(low, cfg.src_vocab, (1, o["src_len"]), generator=generator)
        protocol = {"task": self.task, "batch": 1, "src_len": o["src_len"], "decoder_steps": o["tgt_len"],
                    "beam": o["beam"]}
        return src, o, protocol


def translation_step(model, src_tokens, steps: int, beam: int) -> None:
    import torch
    """HAT's latency workload: encoder once, then `steps` decoder steps on `beam` hypotheses with beam reordering."""
    cfg = model.config
    enc = model.encode(src_tokens)
    enc = model.reorder_encoder_out(enc, torch.zeros(beam, dtype=torch.long, device=src_tokens.device))
    tokens = torch.full((beam, 1), cfg.bos_id, dtype=torch.long, device=src_tokens.device)
    scores = torch.zeros(beam, device=src_tokens.device)
    states = None
    for _ in range(steps):
        logits, states = model.decode(tokens, enc, states=states, return_states=True)
        lprobs = torch.log_softmax(logits[:, -1].float(), dim=-1)  # (beam, V)
        vocab = lprobs.shape[-1]
        top, idx = (scores[:, None] + lprobs).view(-1).topk(beam)
        rows, tokens = idx // vocab, (idx % vocab)[:, None]
        scores = top
        states = model.reorder_states(states, rows)
