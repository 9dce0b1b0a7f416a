"""The latency protocol in the pipeline: collect.latency_clock / latency_stat validation, and the
retraining step's latency.json, which records its protocol and is measured again when it changes."""
import pytest
from cost_archs import VISION

from mixnas.cost import CLOCKS
from mixnas.dataconf import ConfigError, from_dict, load_yaml, preset_dirs
from mixnas.fileio import read_json, write_json
from mixnas.models import build_model, save_model
from mixnas.pipeline import load_pipeline_config
from mixnas.pipeline.config import CollectSection
from mixnas.pipeline.retrain import LATENCY_FILE, measured_latency


def test_collect_latency_protocol_defaults_and_validation():
    c = from_dict(CollectSection, {})
    assert (c.latency_clock, c.latency_stat, c.latency_threads) == ("oncpu", "min", 1)
    assert c.latency_options() == {"runtime": "pytorch", "device": "cpu", "threads": 1, "clock": "oncpu",
                                   "stat": "min", "warmup": 5, "runs": 20}
    for clock in ("oncpu", "cpu"):
        with pytest.raises(ConfigError, match=rf"collect.latency_clock: {clock} times the measuring thread only and "
                                              r"needs collect.latency_threads: 1 \(got None\); or set latency_clock: wall"):
            from_dict(CollectSection, {"latency_clock": clock, "latency_threads": None})
        with pytest.raises(ConfigError, match=rf"collect.latency_clock: {clock} \(the host thread's time\) means "
                                              r"nothing on latency_device: cuda; set collect.latency_clock: wall"):
            from_dict(CollectSection, {"latency_clock": clock, "latency_device": "cuda"})
    with pytest.raises(ConfigError, match="latency_stat"):
        from_dict(CollectSection, {"latency_stat": "mean"})
    with pytest.raises(ConfigError, match="latency_clock"):
        from_dict(CollectSection, {"latency_clock": "process"})
    from_dict(CollectSection, {"latency_device": "cuda", "latency_clock": "wall", "latency_threads": None})
    from_dict(CollectSection, {"latency": False, "latency_device": "cuda"})  # nothing measured: no clock needed


@pytest.mark.parametrize("preset", sorted(p for d in preset_dirs("pipelines") for p in d.glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_every_preset_has_a_valid_latency_protocol(preset):
    from_dict(CollectSection, load_yaml(preset).get("collect", {}))


# the default clock, oncpu, reads Linux's per-thread schedstat
needs_schedstat = pytest.mark.skipif(not CLOCKS["oncpu"].available(), reason="needs /proc/thread-self/schedstat")


@pytest.fixture
def exported(tmp_path):
    arch, config = VISION["mean-pool"]
    save_model(build_model(arch, config), tmp_path / "retrained" / "model")
    return tmp_path / "retrained"


def micro(tmp_path, *overrides):
    return load_pipeline_config("micro", [f"run_dir={tmp_path}", "collect.latency_runs=2",
                                          "collect.latency_warmup=0", *overrides])


@needs_schedstat
def test_retrain_latency_records_its_protocol_and_is_cached(tmp_path, exported):
    latency = measured_latency(micro(tmp_path), exported)
    assert set(latency) == {"ms", "ms_mean", "ms_std", "runs", "protocol", "cost", "by_length"} and latency["ms"] > 0
    assert latency["by_length"] == {}  # retrain.lengths unset
    p = latency["protocol"]
    assert (p["clock"], p["stat"], p["threads"], p["runs"], p["warmup"], p["device"]) == ("oncpu", "min", 1, 2, 0, "cpu")
    assert read_json(exported / LATENCY_FILE, "latency") == latency
    write_json(exported / LATENCY_FILE, {**latency, "ms": 123.0})  # a marker: the cache is read, not remeasured
    assert measured_latency(micro(tmp_path), exported)["ms"] == 123.0


@needs_schedstat
@pytest.mark.parametrize("override", ["collect.latency_stat=median", "collect.latency_clock=wall",
                                      "collect.latency_clock=cpu", "collect.latency_runs=3"])
def test_a_changed_protocol_invalidates_the_retrain_latency_cache(tmp_path, exported, override):
    first = measured_latency(micro(tmp_path), exported)
    write_json(exported / LATENCY_FILE, {**first, "ms": 123.0})
    again = measured_latency(micro(tmp_path, override), exported)
    assert again["ms"] != 123.0
    key, value = override.removeprefix("collect.latency_").split("=")
    assert str(again["protocol"][key]) == value
    assert read_json(exported / LATENCY_FILE, "latency") == again


@needs_schedstat
def test_a_cache_without_protocol_is_measured_again(tmp_path, exported):
    write_json(exported / LATENCY_FILE, {"ms_mean": 123.0, "ms_std": 0.0, "runs": 2})  # written before protocols
    latency = measured_latency(micro(tmp_path), exported)
    assert latency["ms_mean"] != 123.0 and latency["protocol"]["clock"] == "oncpu"
