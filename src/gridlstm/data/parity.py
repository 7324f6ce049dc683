"""k-bit parity (docs/protocols.md): uniform random bit strings, label = XOR of the bits.

The whole string is one input vector ("enters as a whole through a single projection"),
bits as 0.0 / 1.0 [ours]. Rows are the k bits followed by the label.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gridlstm.data.contracts import BitVectors
from gridlstm.data.synthetic import SyntheticDataModule
from gridlstm.nn.checks import check_positive


class ParityDataModule(SyntheticDataModule):
    """Random ``bits``-bit strings and their parity.

    Args:
        bits: k, the string length (>= 1).
        **kwargs: batch sizes, epoch length, held-out sizes, train_pool, seed
            (`SyntheticDataModule`).
    """

    def __init__(self, bits: int = 16, **kwargs: Any) -> None:
        check_positive("bits", bits)
        super().__init__(**kwargs)
        self.bits = bits
        self.check_held_out_sizes(f"bits={bits}")

    def sample(self, count: int, generator: torch.Generator) -> Tensor:
        return torch.randint(0, 2, (count, self.bits), generator=generator)

    def num_problems(self) -> int:
        return 2**self.bits

    def encode(self, problems: Tensor) -> Tensor:
        return torch.cat([problems, problems.sum(1, keepdim=True) % 2], dim=1)

    def module_kwargs(self) -> BitVectors:
        return {"input_size": self.bits, "num_classes": 2}
