"""The kernel layer, at the bottom of `gridlstm.nn`: every step implementation and what they
share, importing nothing above them (no `GridLSTM`, no block, no backend).

* `gates`: the PyTorch reference LSTM arithmetic after the gate GEMM;
* `plans`: the hyperplane step layout (gather indices per anti-diagonal), `Layout`;
* `handwritten`: the hyperplane steps in PyTorch with a handwritten backward;
* `lstm`: `torch.nn.LSTM`'s own kernel (oneDNN / cuDNN) on slices of a transform's weight;
* `native`: the C++ CPU steps (gate op, hyperplane loop, scan time loops);
* `fused`: the Triton GPU steps (hyperplane step, scan recurrence);
* `recompute`: differentiable backwards (double backward) through the PyTorch reference.

* `ops`: the entrance: per op the one function that picks among them and records why.

The backends (`gridlstm.nn.backends`) go through `ops`; `gridlstm.nn.dispatch` holds the
switches that make them step aside and the record of what ran.
"""
