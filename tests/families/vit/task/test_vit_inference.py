"""An image classifier saved with its task predicts raw images (uint8 or float, any layout) as
the model does on the task's own normalised tensors; `mixnas predict` on .npy and .png files."""
import json
import shutil

import numpy as np
import pytest
import torch

import mixnas
from mixnas.cli import main
from mixnas.families.vit.arch import ViTArch, ViTLayerArch
from mixnas.families.vit.model import ViT
from mixnas.families.vit.task.batching import ImageBatches
from mixnas.models import save_model

N = 12


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(model dir, raw uint8 test images (N, 1, 8, 8), the model's logits on the task's tensors)."""
    task = mixnas.build_task("classification", {"name": "digits"})
    torch.manual_seed(0)
    model = ViT(ViTArch(16, (ViTLayerArch(16, 2, "softmax"),), head_dim=8),
                task.model_config({"patch_size": 2, "dropout": 0.0}))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _, batch in zip(range(30), ImageBatches(task.splits["train"], 64, seed=0)):  # varied predictions
        optimizer.zero_grad()
        task.loss(model, batch)[0].backward()
        optimizer.step()
    model.eval()
    directory = save_model(model, tmp_path_factory.mktemp("vit") / "model", task=task,
                           metadata={"eval": {"accuracy": 0.5}})
    test = task.splits["test"]
    batch = next(iter(ImageBatches(test, N, shuffle=False)))  # the task's preprocessing
    with torch.no_grad():
        logits = model(batch.images)
    assert len(set(logits.argmax(-1).tolist())) > 1  # predictions that can tell a wrong mapping
    return directory, test.images[:N], logits


def test_saved_preprocessing_and_metadata(saved):
    directory = saved[0]
    prep = json.loads((directory / "preprocessing.json").read_text())
    assert prep["dataset"] == "digits" and prep["channels"] == 1 and prep["image_size"] == 8
    assert prep["class_names"] == [str(d) for d in range(10)] and len(prep["mean"]) == len(prep["std"]) == 1
    meta = json.loads((directory / "model.json").read_text())
    assert meta["family"] == "vit" and meta["task"] == "classification" and meta["test_metric"] == "accuracy"
    assert meta["eval"] == {"accuracy": 0.5} and meta["command"] is None


def test_predict_equals_model_on_task_tensors(saved, tmp_path):
    directory, images, logits = saved
    moved = shutil.copytree(directory, tmp_path / "moved")
    classifier = mixnas.load(moved)
    expected = logits.argmax(-1).tolist()
    torch.testing.assert_close(classifier.preprocess(images.numpy()),
                               next(iter(ImageBatches(_dataset(images), N, shuffle=False))).images, atol=0, rtol=0)
    hw = [img[0].numpy() for img in images]                     # (H, W) uint8
    hwc = [img.permute(1, 2, 0).numpy() for img in images]     # (H, W, C)
    floats = images.numpy().astype(np.float64) / 255.0          # a (N, C, H, W) float stack in [0, 1]
    assert classifier.predict(hw) == classifier.predict(hwc) == classifier.predict(images) == expected
    assert classifier.predict(floats) == expected
    probs = classifier.probabilities(hw)
    assert probs.shape == (N, 10)
    np.testing.assert_allclose(probs, torch.softmax(logits, -1).numpy(), rtol=1e-5, atol=1e-6)
    assert classifier.class_name(expected[0]) == str(expected[0])


def _dataset(images):
    from dataclasses import replace
    test = mixnas.build_task("classification", {"name": "digits"}).splits["test"]
    return replace(test, images=images, labels=test.labels[:len(images)])


def test_bad_images_are_clear_errors(saved):
    classifier = mixnas.load(saved[0])
    for images, message in (([np.zeros((7, 7), np.uint8)], "is 7x7; this model takes 8x8 images"),
                            ([np.zeros((2, 8, 8), np.uint8)], "has shape"),
                            ([np.full((8, 8), 2.0)], r"float pixels must lie in \[0, 1\]"),
                            ([np.full((8, 8), 300)], "integer pixels must lie in 0..255"),
                            (np.zeros((8, 8)), "stacks them on axis 0"),
                            ([np.zeros((8, 8, 3), np.uint8)], "1-channel 8x8 images")):
        with pytest.raises(ValueError, match=message):
            classifier.predict(images)


def test_predict_command_on_npy_and_png(saved, tmp_path, capsys):
    directory, images, logits = saved
    expected = [str(c) for c in logits.argmax(-1).tolist()]
    paths = []
    for i, img in enumerate(images[:4]):
        paths.append(tmp_path / f"img{i}.npy")
        np.save(paths[-1], img[0].numpy() if i % 2 else img.permute(1, 2, 0).numpy())
    try:
        from PIL import Image
    except ImportError:
        Image = None
    if Image is not None:
        for i, img in enumerate(images[4:8], start=4):
            paths.append(tmp_path / f"img{i}.png")
            Image.fromarray(img[0].numpy(), mode="L").save(paths[-1])
    assert main(["predict", "--model", str(directory), *map(str, paths)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{p}\t{c}" for p, c in zip(paths, expected)]


def test_predict_command_errors(saved, tmp_path, capsys):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((5, 5), np.uint8))
    bare = tmp_path / "bare"
    shutil.copytree(saved[0], bare)
    (bare / "preprocessing.json").unlink()
    for argv, message in (([str(bad)], f"{bad}: the image is 5x5; this model takes 8x8"),
                          ([str(tmp_path / "missing.npy")], "missing.npy does not exist"),
                          (["--model", str(bare), str(bad)], "preprocessing.json does not exist")):
        if argv[0] != "--model":
            argv = ["--model", str(saved[0]), *argv]
        assert main(["predict", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
