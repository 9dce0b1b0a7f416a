"""`mixnas predict`: classify image files with a trained image classifier.

    mixnas predict --model runs/digits_vit/model digit.png more.npy

Prints `path<TAB>class` per image, in order (the class name when the dataset names its classes,
else its index). Files: `.npy` arrays (H, W), (H, W, C) or (C, H, W), uint8 pixels or floats in
[0, 1]; PNG, JPEG and other image formats through Pillow when it is installed (converted to the
model's grayscale or RGB). Images are not resized: they must have the model's image size.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from mixnas.errors import UsageError

NPY = ".npy"


def read_image(path: Path, channels: int):
    """The pixels of an image file as a numpy array (see the module doc)."""
    import numpy as np
    if not path.is_file():
        raise UsageError(f"{path} does not exist")
    if path.suffix.lower() == NPY:
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise UsageError(f"{path} is not a readable .npy array ({str(error).splitlines()[0]})") from None
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise UsageError(f"{path}: reading {path.suffix or 'this'} files needs Pillow (pip install pillow); "
                         f"or save the pixels as .npy") from None
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L" if channels == 1 else "RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise UsageError(f"{path} is not an image Pillow can read ({str(error).splitlines()[0]})") from None


def run(args: argparse.Namespace) -> int:
    from mixnas.models.io import load_inference

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    classifier = load_inference(args.model, task="classification")
    batches = []
    for name in args.images:
        pixels = read_image(Path(name), classifier.channels)
        try:
            batches.append(classifier.preprocess([pixels]))
        except ValueError as error:
            raise UsageError(f"{name}: {error}") from None
    import torch
    logits = classifier.logits(torch.cat(batches), args.batch_size)
    for name, index in zip(args.images, logits.argmax(dim=-1).tolist()):
        print(f"{name}\t{classifier.class_name(index)}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="classify images with a trained image classifier")
    p.add_argument("--model", required=True,
                   help="a saved model directory (as `mixnas train` writes run/model) or its run directory")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image files: .npy arrays, or PNG/JPEG... when Pillow is installed")
    p.add_argument("--batch-size", type=int, default=256, help="images classified together (default 256)")
    p.set_defaults(func=run)
