"""The ``hyperplane`` backend: cells with equal coordinate sum run together.

`plan` (`gridlstm.nn.kernels.plans`) builds a grid shape's gather indices once;
`scheduler.run` executes a plan with the fused, native or handwritten steps
(`gridlstm.nn.kernels`) where they apply, else the per-op steps (`per_op`).
"""

from gridlstm.nn import dispatch
from gridlstm.nn.backends.hyperplane.per_op import LayerStack, step
from gridlstm.nn.backends.hyperplane.scheduler import handwritten_blocker, run
from gridlstm.nn.kernels.plans import Plan, plan, to_device

__all__ = [
    "LayerStack",
    "Plan",
    "handwritten_blocker",
    "plan",
    "run",
    "step",
    "to_device",
]


def __getattr__(name: str) -> object:
    raise dispatch.removed(__name__, name)
