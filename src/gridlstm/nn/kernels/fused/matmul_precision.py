"""How float32 matmuls may round on CUDA, read without raising.

Why: PyTorch has two switches for TF32, the legacy ones (``allow_tf32``,
``set_float32_matmul_precision``) and the newer ``fp32_precision`` attributes. Once a user
sets the newer one, reading a legacy one raises a RuntimeError, and the fused step read the
legacy ones on every forward. These readers try the legacy API and, when it refuses, answer
from the newer one, so the fused step follows the user's setting whichever API set it.
"""

from __future__ import annotations

import torch


def _new_api() -> str:
    return str(getattr(torch.backends.cuda.matmul, "fp32_precision", "none"))


def allows_tf32() -> bool:
    """Whether float32 CUDA matmuls may use TF32."""
    try:
        return bool(torch.backends.cuda.matmul.allow_tf32)
    except RuntimeError:  # the newer API is in use
        return _new_api() == "tf32"


def float32_matmul_precision() -> str:
    """``torch.get_float32_matmul_precision()``'s answer: ``highest`` or ``high``/``medium``."""
    try:
        return torch.get_float32_matmul_precision()
    except RuntimeError:  # the newer API is in use
        return "high" if _new_api() == "tf32" else "highest"
