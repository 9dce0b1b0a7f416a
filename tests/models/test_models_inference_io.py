"""save_model with a task and metadata, model.json, and the Family defaults of the inference API."""
import json

import pytest

import mixnas
from mixnas.families.family import Family
from mixnas.families.vit.arch import ViTArch, ViTLayerArch
from mixnas.families.vit.config import ViTConfig
from mixnas.families.vit.model import ViT
from mixnas.models import save_model
from mixnas.models.io import git_commit, load_inference, model_directory


def _vit():
    return ViT(ViTArch(16, (ViTLayerArch(16, 2, "softmax"),), head_dim=8),
               ViTConfig(image_size=8, patch_size=4, in_channels=1, num_classes=10))


def test_without_task_nothing_but_weights(tmp_path):
    save_model(_vit(), tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} == {"arch.yaml", "model.pt"}
    with pytest.raises(ValueError, match=r"^\S*preprocessing.json does not exist: .*retrain the model with this "
                                         r"version of mixnas, or save it with its task"):
        mixnas.load(tmp_path / "m")


def test_metadata_without_task(tmp_path):
    save_model(_vit(), tmp_path, metadata={"command": "by hand", "extra": 1})
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["family"] == "vit" and meta["command"] == "by hand" and meta["extra"] == 1
    assert meta["eval"] is None and meta["mixnas_version"] == mixnas.__version__
    assert meta["git_commit"] == git_commit()


def test_task_of_another_family_is_refused(tmp_path):
    class Other:
        kind = "translation"
    with pytest.raises(ValueError, match="a vit model goes with a classification task, not a translation task"):
        save_model(_vit(), tmp_path, task=Other())


def test_run_directory_and_task_check(tmp_path):
    task = mixnas.build_task("classification", {"name": "digits"})
    save_model(_vit(), tmp_path / "run" / "model", task=task)
    assert model_directory(tmp_path / "run") == tmp_path / "run" / "model"
    assert load_inference(tmp_path / "run").predict([[[0] * 8] * 8]) in ([i] for i in range(10))
    with pytest.raises(ValueError, match="holds a vit model .*not a translation model"):
        load_inference(tmp_path / "run", task="translation")


def test_family_defaults(tmp_path):
    family = Family()
    family.name, family.task = "toy", "toying"
    assert family.save_assets(object(), tmp_path) is None and not any(tmp_path.iterdir())
    with pytest.raises(ValueError, match="no inference API for this family"):
        family.inference(object(), tmp_path)
