"""Train a Grid LSTM: ``python train.py model=grid2d task=addition hardware=cpu``.

Thin Hydra entry point over ``conf/``; the work happens in `gridlstm.train`.
"""

import hydra
from omegaconf import DictConfig

from gridlstm.launch import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from gridlstm.train import main as train

    metrics = train(cfg)
    return metrics.get(cfg.task.monitor)


if __name__ == "__main__":
    main()
