"""Train a Grid LSTM: ``python train.py model=grid2d task=addition hardware=cpu``.

Thin Hydra entry point over ``conf/``; the work happens in `gridlstm.train`.
"""

import os

# Idle OpenMP threads sleep instead of spinning: on a busy machine spinning threads steal the
# cores that other jobs need (measured: README, "Console and CPU threads"). It must be set
# before torch loads OpenMP; export OMP_WAIT_POLICY=ACTIVE to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import sys  # noqa: E402

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from gridlstm.config import compose_problem, output_dir_problem  # noqa: E402
from gridlstm.launch import register_resolvers  # noqa: E402
from gridlstm.sweeps import missing_plugin  # noqa: E402

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from gridlstm.train import main as train

    metrics = train(cfg)
    return metrics.get(cfg.task.monitor)


if __name__ == "__main__":
    argv = sys.argv[1:]
    conf = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conf")
    if problem := missing_plugin(argv) or output_dir_problem(argv) or compose_problem(argv, conf):
        print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    main()
