"""GridLSTM's backends, one module each; `gridlstm.nn.grid` picks one per call.

``fast`` (LSTM-kernel factorisation, `kernel` holds the private op), ``scan`` (per-layer time
scan), ``hyperplane`` (anti-diagonal scheduler: plan, per-op and hand-written steps),
``naive`` (one cell at a time, the reference order) and ``compiled`` (torch.compile of the
scan and hyperplane per-step functions). All compute the same function (tests/test_grid.py
against the float64 reference in tests/reference.py).
"""
