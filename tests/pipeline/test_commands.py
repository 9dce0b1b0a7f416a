import pytest

from mixnas import cli

PIPELINE_COMMANDS = {"train-supernet": "mixnas.pipeline.commands:add_train_supernet_parser",
                     "collect": "mixnas.pipeline.commands:add_collect_parser",
                     "rank-check": "mixnas.pipeline.commands:add_rank_check_parser"}


@pytest.fixture
def mixnas_main(monkeypatch):
    for name, target in PIPELINE_COMMANDS.items():
        monkeypatch.setitem(cli.COMMANDS, name, target)
    return cli.main


def test_commands_run_end_to_end(mixnas_main, tmp_path, capsys):
    common = ["--config", "micro", f"run_dir={tmp_path}"]
    assert mixnas_main(["train-supernet", *common, "supernet.train.max_updates=4"]) == 0
    assert mixnas_main(["collect", *common, "--num-archs", "2"]) == 0
    assert (tmp_path / "collect.csv").read_text().count("\n") == 3
    assert mixnas_main(["rank-check", *common, "--k", "2", "--updates", "2", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "2 architectures (2 new)" in out and "Kendall tau inherited vs retrained" in out
    assert (tmp_path / "r.json").is_file()


@pytest.mark.parametrize("argv, message", [
    (["train-supernet", "--config", "nope"], "no pipeline config 'nope'"),
    (["train-supernet", "--config", "micro", "supernet.train.seed=5"], "set seed instead"),
    (["train-supernet", "--config", "micro", "supernet.bogus=1"], "unknown key 'bogus'"),
    (["train-supernet", "--config", "micro", "supernet.space=multi30k_small"], "choose a vit space"),
    (["collect", "--config", "micro"], "run `mixnas train-supernet` first"),
])
def test_bad_input_is_one_line_and_exit_2(mixnas_main, argv, message, capsys, tmp_path):
    if not any(a.startswith("run_dir=") for a in argv):
        argv = [*argv, f"run_dir={tmp_path}"]  # never the working tree's runs/
    assert mixnas_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
