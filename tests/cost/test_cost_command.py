"""`mixnas cost`: reads an exported model and reports the analytic counts (and latency)."""
import argparse
import json

import pytest
from cost_archs import TRANSLATION, VISION

from mixnas.cost import count_decode_flops, count_flops, count_params
from mixnas.cost.command import add_parser
from mixnas.cost.latency import default_clock
from mixnas.models import build_model, save_model


def cost_main(argv):
    parser = argparse.ArgumentParser(prog="mixnas")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["cost", *argv])
    return args.func(args)


def test_translation_report(tmp_path, capsys):
    arch, config, *_ = TRANSLATION["prenorm-shared-3-cross"]
    save_model(build_model(arch, config), tmp_path / "model")
    out = tmp_path / "report.json"
    assert cost_main([str(tmp_path / "model"), "--src-len", "7", "--tgt-len", "5", "--beam", "2",
                      "--latency", "--runs", "3", "--warmup", "0", "--threads", "1", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["params"] == count_params(arch, config)
    assert report["params_without_embeddings"] == count_params(arch, config, include_embeddings=False)
    assert report["flops"] == count_flops(arch, config, src_len=7, tgt_len=5)
    assert report["decode_flops"] == count_decode_flops(arch, config, src_len=7, tgt_len=5, beam=2)
    assert report["latency_ms"] > 0 and report["latency_protocol"]["beam"] == 2
    assert "decode_flops_without_embeddings" in capsys.readouterr().out


def test_vit_report(tmp_path, capsys):
    arch, config = VISION["mean-pool"]
    save_model(build_model(arch, config), tmp_path)
    assert cost_main([str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    # exact counts, with a rounded reading beside them
    assert f"{count_flops(arch, config):,} (" in printed and "latency_ms" not in printed
    assert f"{count_params(arch, config):,} (" in printed


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="arch.yaml does not exist"):
        cost_main([str(tmp_path)])


def test_latency_clock_and_statistic_flags(tmp_path, capsys):
    arch, config = VISION["mean-pool"]
    save_model(build_model(arch, config), tmp_path / "model")
    out = tmp_path / "report.json"
    assert cost_main([str(tmp_path / "model"), "--latency", "--runs", "3", "--warmup", "0", "--json", str(out)]) == 0
    protocol = json.loads(out.read_text())["latency_protocol"]
    assert (protocol["clock"], protocol["stat"], protocol["threads"]) == (default_clock("cpu"), "min", 1)  # defaults
    assert "latency measured as" in capsys.readouterr().out
    assert cost_main([str(tmp_path / "model"), "--latency", "--runs", "3", "--warmup", "0", "--clock", "cpu"]) == 0
    assert "minimum of 3 timed runs after 0 warm-up, CPU time of the measuring thread, 1 thread" in capsys.readouterr().out
    assert cost_main([str(tmp_path / "model"), "--latency", "--runs", "3", "--warmup", "0", "--clock", "wall",
                      "--stat", "median", "--threads", "2", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert (report["latency_protocol"]["clock"], report["latency_protocol"]["stat"]) == ("wall", "median")
    assert report["latency_protocol"]["threads"] == 2 and report["latency_ms"] > 0
    with pytest.raises(ValueError, match=r"clock 'cpu' .* needs exactly 1 intra-op thread \(got threads=2\)"):
        cost_main([str(tmp_path / "model"), "--latency", "--clock", "cpu", "--threads", "2"])


def test_lengths_table_of_a_language_model(tmp_path, capsys):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "families" / "lm"))
    from lm_helpers import tiny_config
    from test_lm_model import mixed_arch

    from mixnas.families import family_named
    arch, config = mixed_arch(), tiny_config(context=12)
    save_model(build_model(arch, config), tmp_path / "model")
    out = tmp_path / "lengths.json"
    assert cost_main([str(tmp_path / "model"), "--lengths", "4,8,12", "--latency", "--runs", "2", "--warmup", "0",
                      "--json", str(out)]) == 0
    by_length = json.loads(out.read_text())["by_length"]
    assert list(by_length) == ["4", "8", "12"]
    family = family_named("lm")
    for n in (4, 8, 12):
        assert by_length[str(n)] == {**by_length[str(n)], **family.cost_report(arch, config, seq_len=n)}
        assert by_length[str(n)]["latency_ms"] > 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split() == ["length", "flops", "decode_flops", "decode_state_bytes", "latency_ms"]
    assert [line.split()[0] for line in printed[1:4]] == ["4", "8", "12"]
    # A length the model cannot run (latency past its context) and a ViT: one-line errors.
    with pytest.raises(ValueError, match="exceeds the model's context"):
        cost_main([str(tmp_path / "model"), "--lengths", "16", "--latency"])
    vit_arch, vit_config = VISION["mean-pool"]
    save_model(build_model(vit_arch, vit_config), tmp_path / "vit")
    with pytest.raises(ValueError, match="no sequence length"):
        cost_main([str(tmp_path / "vit"), "--lengths", "16"])
    with pytest.raises(ValueError, match="positive integers"):
        cost_main([str(tmp_path / "model"), "--lengths", "a,b"])
