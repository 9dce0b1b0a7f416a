"""Pipeline presets and the predictor/search/retrain config sections."""
import pytest

from mixnas.dataconf import ConfigError
from mixnas.pipeline import load_pipeline_config
from mixnas.pipeline.retrain import baseline_archs
from mixnas.pipeline.search_step import attention_code, restricted_space
from mixnas.space import SearchSpace

PRESETS = {"digits": [], "micro": [], "fashion-mnist": [], "cifar10": [],
           "multi30k": ["data.dir=/data/multi30k"], "wmt14": ["data.dir=/data/wmt14"]}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_loads_with_its_space_and_baselines(name):
    cfg = load_pipeline_config(name, PRESETS[name])
    space = SearchSpace.load(cfg.supernet.space)
    assert space.kind == ("vit" if cfg.task == "classification" else "transformer")
    baselines = baseline_archs(cfg)
    assert len(baselines) == 2
    kinds = [set(attention_code(arch).replace("enc", "").replace("dec", "").replace("|", "").replace(":", " ").split())
             for _, arch in baselines]
    assert kinds == [{"S"}, {"C"}]  # the hand-designed softmax model and the same with cosFormer
    assert cfg.search.evolution.population == 125 and cfg.search.evolution.generations == 30 or name == "micro"
    assert cfg.search.constraints.limits()
    assert cfg.search.random.enabled and cfg.search.random.budget is None  # the control, the evolution's count
    assert cfg.search.nsga2.enabled and cfg.search.nsga2.population >= 4


def test_translation_presets_need_data_dir():
    with pytest.raises(ValueError, match="data.dir is required"):
        load_pipeline_config("multi30k")


@pytest.mark.parametrize("override, message", [
    ("retrain.train.save_dir=elsewhere", "derived from run_dir and seed"),
    ("search.evolution.seed=3", "derived from seed"),
    ("search.evolution.population=100", "must equal parents"),
    ("search.constraints.flops=-1", "must be > 0"),
    ("predictor.score=forest", "is not one of"),
    ("search.random.budget=0", "search.random.budget must be >= 1"),
    ("search.nsga2.population=3", "search.nsga2.population must be >= 4"),
    ("search.nsga2=true", "search.nsga2: expected a mapping"),  # the old flat keys are refused by name
    ("search.nsga2_population=12", "unknown key 'nsga2_population'"),
    ("cost.seq_len=64", "cost: vit models take no cost option 'seq_len'"),  # the micro preset is a ViT's
    ("retrain.lengths=[64]", "retrain.lengths: vit models have no sequence length to vary"),
    ("search.constraints.decode_state_bytes=1000", "vit models do not decode"),
    ("collect.latency_lengths=[8,16]", "collect.latency_lengths needs collect.latency: true"),
    ("collect.latency_lengths=[8]", "two or more distinct lengths"),
])
def test_bad_settings_are_one_line_errors(override, message):
    with pytest.raises(ValueError, match=message):
        load_pipeline_config("micro", [override])


def test_latency_constraint_needs_measured_latency():
    with pytest.raises(ConfigError, match="collect.latency: true"):
        load_pipeline_config("micro", ["collect.latency=false", "search.constraints.latency_ms=1.0"])


def test_restricted_space_narrows_only_the_attention_kinds():
    for name in ("digits_vit", "hat_wmt14"):
        space = SearchSpace.load(name)
        narrowed = restricted_space(space, "cosformer")
        assert narrowed.attention_kinds == ("cosformer",)
        full, small = space.to_dict(), narrowed.to_dict()
        for d in (full, small):
            d.pop("name")
            for section in (d, d.get("encoder", {}), d.get("decoder", {})):
                section.pop("attention", None)
                section.pop("cross_attention", None)
        assert full == small
