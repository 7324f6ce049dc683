"""Training glue: config checks, callbacks, loggers, launchers, sweeps, run directories, the
checkpoint loader, and the training and evaluation procedures the commands call.

Imports `gridlstm.nn`, `gridlstm.data` and `gridlstm.tasks`; nothing below imports it.
"""
