"""Using a trained image classifier: its saved preprocessing turns raw images into model inputs.

    classifier = mixnas.load("runs/digits_vit/model")
    classifier.predict([image])            # -> [class index]; classifier.class_names[i] names it
    classifier.probabilities(images)       # -> numpy (N, classes)

`save_assets` writes `preprocessing.json`: the dataset name, channels, image size, class names
and the per-channel mean and std of the training split that the task's batches normalise with
(task/batching.py: pixels / 255, then (x - mean) / std). An image is a numpy array or tensor of
shape (H, W) (one channel), (H, W, C) or (C, H, W): uint8 (or integer) pixels in 0..255, or
floats in [0, 1] (uint8 / 255). Images are not resized: they must be image_size x image_size.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

PREPROCESSING_FILE = "preprocessing.json"
DEFAULT_BATCH_SIZE = 256


def save_vit_assets(task, directory: Path) -> None:
    """preprocessing.json (dataset, channels, size, class names, mean and std) into `directory`."""
    from ...fileio import write_json
    meta = task.splits["train"].metadata()
    write_json(directory / PREPROCESSING_FILE, {
        "dataset": meta["name"], "channels": meta["channels"], "image_size": meta["image_size"],
        "class_names": meta["class_names"], "pixel_scale": 255.0, "mean": meta["mean"], "std": meta["std"]})


class Classifier:
    """An image classifier with its preprocessing (`mixnas.load` builds it).

    `model`, `class_names` (list, possibly empty), `channels`, `image_size`, `mean`, `std`,
    `dataset`. Methods take `images`: a list of images, or one array stacking them on axis 0."""

    def __init__(self, model, directory: str | Path) -> None:
        from ...models.io import MISSING_ASSET_FIX, read_asset_json
        directory = Path(directory)
        prep = read_asset_json(directory, PREPROCESSING_FILE)
        where = directory / PREPROCESSING_FILE
        try:
            self.channels, self.image_size = int(prep["channels"]), int(prep["image_size"])
            self.mean, self.std = [float(v) for v in prep["mean"]], [float(v) for v in prep["std"]]
            self.pixel_scale = float(prep.get("pixel_scale", 255.0))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{where} lacks or mangles {error}; {MISSING_ASSET_FIX}") from None
        self.class_names = [str(c) for c in prep.get("class_names") or []]
        self.dataset = prep.get("dataset")
        cfg = model.config
        if (self.channels, self.image_size) != (cfg.in_channels, cfg.image_size) or \
                len(self.mean) != self.channels or len(self.std) != self.channels or \
                (self.class_names and len(self.class_names) != cfg.num_classes):
            raise ValueError(f"{where} does not match the model (channels {cfg.in_channels}, image size "
                             f"{cfg.image_size}, {cfg.num_classes} classes); {MISSING_ASSET_FIX}")
        self.model, self.directory = model, directory

    # ------------------------------------------------------------ preprocessing
    def preprocess(self, images: Any):
        """(N, C, H, W) float32 tensor of normalised images, as the task's batches hold them."""
        import torch
        items = self._items(images)
        if not items:
            raise ValueError("no images given")
        mean = torch.tensor(self.mean, dtype=torch.float32)[:, None, None]
        std = torch.tensor(self.std, dtype=torch.float32)[:, None, None]
        pixels = torch.stack([self._pixels(image, i, len(items)) for i, image in enumerate(items)])
        return (pixels - mean) / std

    def _items(self, images: Any) -> list:
        if isinstance(images, (list, tuple)):
            return list(images)
        if hasattr(images, "shape") and hasattr(images, "ndim"):  # numpy array or tensor: a stack
            if images.ndim < 3:
                raise ValueError(f"an array of images stacks them on axis 0, got shape {tuple(images.shape)}; "
                                 f"pass one image as [image]")
            return [images[i] for i in range(images.shape[0])]
        raise ValueError(f"images must be a list of arrays or one stacked array, got {type(images).__name__}")

    def _pixels(self, image: Any, index: int, count: int):
        """One image -> (C, H, W) float32 in [0, 1]."""
        import numpy as np
        import torch
        where = f"image {index}" if count > 1 else "the image"
        try:
            array = image.detach().cpu() if isinstance(image, torch.Tensor) else torch.from_numpy(np.array(image))  # a writable copy
        except (TypeError, ValueError) as error:  # object arrays, ragged lists
            raise ValueError(f"{where} is not an array of pixels ({error})") from None
        if array.dtype == torch.bool or array.is_complex():
            raise ValueError(f"{where} has dtype {array.dtype}; give uint8 pixels or floats in [0, 1]")
        c, size = self.channels, self.image_size
        shape = tuple(array.shape)
        if array.ndim == 2 and c == 1:
            array = array[None]
        elif array.ndim == 3 and shape[0] == c and shape[1:] == (size, size):
            pass  # (C, H, W)
        elif array.ndim == 3 and shape[2] == c and shape[:2] == (size, size):
            array = array.permute(2, 0, 1)  # (H, W, C)
        else:
            layouts = f"({size}, {size}, {c}) or ({c}, {size}, {size})"
            layouts = f"({size}, {size}), {layouts}" if c == 1 else layouts
            raise ValueError(f"{where} has shape {shape}; this model takes {c}-channel {size}x{size} images: "
                             f"{layouts} (resize or convert it first)")
        if tuple(array.shape[1:]) != (size, size):
            raise ValueError(f"{where} is {shape[0]}x{shape[1]}; this model takes {size}x{size} images (resize it first)")
        if array.is_floating_point():
            array = array.float()
            if bool(torch.isnan(array).any()) or float(array.min()) < 0 or float(array.max()) > 1:
                raise ValueError(f"{where}: float pixels must lie in [0, 1] (uint8 values / 255)")
            return array.contiguous()
        if int(array.min()) < 0 or int(array.max()) > 255:
            raise ValueError(f"{where}: integer pixels must lie in 0..255")
        return array.to(torch.uint8).float() / self.pixel_scale

    # ------------------------------------------------------------ predictions
    def logits(self, batch, batch_size: int = DEFAULT_BATCH_SIZE):
        """The model's (N, classes) float32 logits of a preprocessed batch (`preprocess`'s output)."""
        import torch
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        device = next(self.model.parameters()).device
        self.model.eval()
        with torch.no_grad():
            parts = [self.model(batch[i:i + batch_size].to(device)).float().cpu()
                     for i in range(0, len(batch), batch_size)]
        return torch.cat(parts)

    def probabilities(self, images: Any, batch_size: int = DEFAULT_BATCH_SIZE):
        """numpy (N, classes) class probabilities (softmax of the logits) of raw images."""
        import torch
        return torch.softmax(self.logits(self.preprocess(images), batch_size), dim=-1).numpy()

    def predict(self, images: Any, batch_size: int = DEFAULT_BATCH_SIZE) -> list[int]:
        """The most likely class index of each raw image (its name: `class_name(i)`)."""
        return self.logits(self.preprocess(images), batch_size).argmax(dim=-1).tolist()

    def class_name(self, index: int) -> str:
        """The name of class `index`, or the index as text when the dataset names none."""
        return self.class_names[index] if index < len(self.class_names) else str(index)

    def __repr__(self) -> str:
        return (f"<Classifier {self.dataset} ({self.channels}x{self.image_size}x{self.image_size}, "
                f"{self.model.config.num_classes} classes) of {self.directory}>")
