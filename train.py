"""Train a Grid LSTM: ``python train.py model=grid2d task=addition hardware=cpu``.

The entry the suite is used through: Hydra overrides over this repository's ``conf/``.
`gridlstm.train` checks the command line and runs Hydra; the work happens in
`gridlstm.run.training`. ``python -m gridlstm.train`` and ``gridlstm-train`` are the same.
"""

from pathlib import Path

from gridlstm.train import main

if __name__ == "__main__":
    main(conf=Path(__file__).resolve().parent / "conf")
