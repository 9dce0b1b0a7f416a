import pytest
import torch

from mixnas.pipeline import load_pipeline_config, train_supernet


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared machine: one thread is many times faster than two contended ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained_micro(tmp_path_factory):
    """(config, supernet dir) of a briefly trained micro supernet."""
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("micro")
    cfg = load_pipeline_config("micro", [f"run_dir={run_dir}", "supernet.train.max_updates=12"])
    train_supernet(cfg)
    return cfg, cfg.supernet_dir
