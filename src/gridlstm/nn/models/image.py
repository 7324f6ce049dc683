"""Image models that scan a grid of patches: the 3-LSTM of the paper's MNIST experiment
(two spatial dimensions + depth) and Graves' 2D Multidimensional LSTM baseline.

An image (B, C, H, W) is cut into non-overlapping p x p patches, giving a (H/p, W/p) grid
whose cells hold C*p*p pixel values; the input enters at every spatial position (through
depth, paper section 3.4). A scan starts at one corner of the grid; with 2 or 4 scan
directions (opposite corners, or all four) each direction has its own network, and the
classifier reads the hidden vectors of the cells where the scans end, concatenated: the cell
that has seen the whole image. The directions and the end-cell features are our choices;
patches of 2 pixels follow a student's public script (docs/protocols.md, section 2).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gridlstm.nn.checks import check_positive
from gridlstm.nn.grid import GridLSTM
from gridlstm.nn.models.baselines import MDLSTM2d
from gridlstm.nn.precision import run_rnn

# Scan directions: (flip rows, flip columns) per network; the start corner of each scan.
DIRECTIONS: dict[int, list[tuple[bool, bool]]] = {
    1: [(False, False)],
    2: [(False, False), (True, True)],
    4: [(False, False), (True, True), (False, True), (True, False)],
}


def check_image(image_size: int | list[int] | tuple[int, int], patch_size: int) -> tuple[int, int]:
    """(H, W); a patch size that does not tile the image is a ValueError."""
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2:
        raise ValueError(f"image_size must be an int or (height, width), got {image_size!r}")
    for value in size:
        check_positive("image_size", value)
    check_positive("patch_size", patch_size)
    if size[0] % patch_size or size[1] % patch_size:
        divisors = [p for p in range(1, min(size) + 1) if size[0] % p == 0 and size[1] % p == 0]
        raise ValueError(
            f"patch_size={patch_size} does not divide the {size[0]}x{size[1]} image; "
            f"choose one of {divisors}"
        )
    return size


def to_patches(images: Tensor, patch_size: int) -> Tensor:
    """(B, C, H, W) -> (B, H/p, W/p, C*p*p): each cell holds its patch's pixels."""
    batch, channels, height, width = images.shape
    p = patch_size
    patches = images.reshape(batch, channels, height // p, p, width // p, p)
    return patches.permute(0, 2, 4, 1, 3, 5).reshape(batch, height // p, width // p, -1)


class PatchScan(nn.Module):
    """Base of the patch-grid scanners: patching, directions, end-cell features.

    Args:
        image_size: H (square) or (H, W); channels: C.
        patch_size: p, must divide H and W.
        hidden_size, num_layers: d and depth L of each scan's network.
        directions: 1, 2 or 4 scans from different corners, one network each.
        **scan_options: passed to each network.

    Subclasses build the network of one direction in ``make_scan(input_size)``, mapping
    (B, H', W', F) -> ((B, H', W', d), state).
    """

    def __init__(
        self,
        image_size: int | tuple[int, int] = 28,
        channels: int = 1,
        patch_size: int = 4,
        hidden_size: int = 64,
        num_layers: int = 2,
        directions: int = 1,
        **scan_options: Any,
    ) -> None:
        super().__init__()
        self.image_size = check_image(image_size, patch_size)
        check_positive("channels", channels)
        check_positive("hidden_size", hidden_size)
        check_positive("num_layers", num_layers)
        if directions not in DIRECTIONS:
            raise ValueError(f"directions must be one of {sorted(DIRECTIONS)}; got {directions!r}")
        self.channels, self.patch_size, self.directions = channels, patch_size, directions
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.output_size = directions * hidden_size
        self.scan_options = scan_options
        self.scans = nn.ModuleList(
            self.make_scan(channels * patch_size**2) for _ in range(directions)
        )

    def make_scan(self, input_size: int) -> nn.Module:
        raise NotImplementedError

    def forward(self, images: Tensor, state: None = None) -> tuple[Tensor, None]:
        """Images (B, C, H, W) -> (features (B, directions * d), None)."""
        expected = (self.channels, *self.image_size)
        if images.dim() != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"images must be (batch, {', '.join(map(str, expected))}); "
                f"got {tuple(images.shape)}"
            )
        grid = to_patches(images, self.patch_size)
        features = []
        for scan, (flip_rows, flip_cols) in zip(
            self.scans, DIRECTIONS[self.directions], strict=True
        ):
            flips = [dim for dim, flip in ((1, flip_rows), (2, flip_cols)) if flip]
            output, _ = scan(grid.flip(flips) if flips else grid)
            features.append(output[:, -1, -1])  # the end cell has seen every patch
        return torch.cat(features, dim=-1), None


class Grid3dImageEncoder(PatchScan):
    """The paper's MNIST backbone: a 3-LSTM over image patches (a `GridLSTM` with two grid
    dimensions and depth per scan direction); images in, the end cells' hidden vectors out
    (the task's classifier reads them). Named ``Grid3dLSTM`` before 0.2, which read as
    ``GridLSTM(grid_dims=2)``; it is not one. Arguments: see `PatchScan`; ``scan_options``
    are any `GridLSTM` options (tied, priority, backend, dropout, ...)."""

    def make_scan(self, input_size: int) -> nn.Module:
        return GridLSTM(
            input_size, self.hidden_size, self.num_layers, grid_dims=2, **self.scan_options
        )


class MDLSTMImage(PatchScan):
    """Baseline: Graves' 2D Multidimensional LSTM (`MDLSTM2d`) over the same patch grid.
    Arguments: see `PatchScan` (``scan_options``: ``forget_bias``)."""

    def make_scan(self, input_size: int) -> nn.Module:
        return MDLSTM2d(input_size, self.hidden_size, self.num_layers, **self.scan_options)


class RowLSTM(nn.Module):
    """Baseline: a stacked LSTM (`nn.LSTM`, cuDNN on GPU) reading the image row by row;
    features are its last hidden vector."""

    def __init__(
        self,
        image_size: int | tuple[int, int] = 28,
        channels: int = 1,
        hidden_size: int = 128,
        num_layers: int = 2,
    ) -> None:
        super().__init__()
        self.image_size = check_image(image_size, 1)
        check_positive("hidden_size", hidden_size)
        check_positive("num_layers", num_layers)
        self.channels, self.hidden_size, self.output_size = channels, hidden_size, hidden_size
        width = channels * self.image_size[1]
        self.lstm = nn.LSTM(width, hidden_size, num_layers, batch_first=True)

    def forward(self, images: Tensor, state: None = None) -> tuple[Tensor, None]:
        rows = images.permute(0, 2, 1, 3).flatten(2)  # (B, H, C*W)
        output, _ = run_rnn(self.lstm, rows)
        return output[:, -1], None


class SmallCNN(nn.Module):
    """Baseline: ``num_layers`` blocks of 3x3 convolution, ReLU and 2x2 max-pooling with
    ``hidden_size`` channels, flattened."""

    def __init__(
        self,
        image_size: int | tuple[int, int] = 28,
        channels: int = 1,
        hidden_size: int = 32,
        num_layers: int = 2,
    ) -> None:
        super().__init__()
        height, width = check_image(image_size, 1)
        check_positive("hidden_size", hidden_size)
        check_positive("num_layers", num_layers)
        if min(height, width) >> num_layers < 1:
            raise ValueError(f"num_layers={num_layers} pools a {height}x{width} image to nothing")
        layers: list[nn.Module] = []
        for layer in range(num_layers):
            layers += [
                nn.Conv2d(channels if layer == 0 else hidden_size, hidden_size, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.hidden_size = hidden_size
        self.output_size = hidden_size * (height >> num_layers) * (width >> num_layers)

    def forward(self, images: Tensor, state: None = None) -> tuple[Tensor, None]:
        return self.features(images), None
