from dataclasses import dataclass, field
from typing import Literal

import pytest

from mixnas.dataconf import ConfigError, apply_overrides, from_dict, load_yaml, to_dict


@dataclass
class Opt:
    lr: float = 1e-3
    schedule: Literal["cosine", "inverse_sqrt"] = "cosine"
    seed: int | None = None
    betas: tuple[float, ...] = (0.9, 0.98)


@dataclass
class Run:
    name: str
    opt: Opt = field(default_factory=Opt)
    flags: list[int] = field(default_factory=list)


def test_nested_build_and_round_trip():
    run = from_dict(Run, {"name": "a", "opt": {"lr": 1, "betas": [0.8, 0.9]}, "flags": [1, 2]})
    assert run.opt.lr == 1.0 and isinstance(run.opt.lr, float)
    assert run.opt.betas == (0.8, 0.9)
    assert from_dict(Run, to_dict(run)) == run


@pytest.mark.parametrize("data, message", [
    ({"name": "a", "opt": {"lrr": 1}}, "opt: unknown key 'lrr' (valid: lr, schedule, seed, betas)"),
    ({"name": "a", "opt": {"lr": "fast"}}, "opt.lr: expected a number, got 'fast'"),
    ({"name": "a", "opt": {"schedule": "step"}}, "opt.schedule: 'step' is not one of 'cosine', 'inverse_sqrt'"),
    ({"opt": {}}, "name: required key is missing"),
    ({"name": "a", "flags": [1, "x"]}, "flags[1]: expected an integer, got 'x'"),
    ({"name": "a", "opt": {"seed": True}}, "opt.seed: expected an integer, got True"),
])
def test_errors_name_the_key(data, message):
    with pytest.raises(ConfigError) as e:
        from_dict(Run, data)
    assert str(e.value) == message


def test_overrides_parse_yaml_values():
    data = apply_overrides({"name": "a"}, ["opt.lr=2e-4", "opt.seed=7", "flags=[3, 4]", "name=b"])
    run = from_dict(Run, data)
    assert run.opt.lr == 2e-4 and run.opt.seed == 7 and run.flags == [3, 4] and run.name == "b"
    with pytest.raises(ConfigError, match="must look like key=value"):
        apply_overrides({}, ["opt.lr"])
    with pytest.raises(ConfigError, match="'name' is not a section"):
        apply_overrides({"name": "a"}, ["name.x=1"])


def test_load_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_yaml(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_yaml(lst)
