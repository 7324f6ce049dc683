"""Re-score a checkpoint on the validation and test sets, without training.

    python -m gridlstm.evaluate ckpt_path=outputs/.../checkpoints/best-step4000.ckpt \\
        [task.datamodule.digits=20] [device=cuda] [out=DIR]    (or: gridlstm-evaluate ...)

Config overrides (``task.*``, ``model.*``, ``hardware.*``) change the run's stored config
before anything is built, e.g. a longer addition or memorization task than in training, to
test generalisation. Results go to ``metrics.json`` in a directory of their own (default
``outputs/evaluate/<date>/<time>_<id>``; ``hydra.run.dir=`` is a synonym of ``out=``), with
the config used (``config.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gridlstm.run import arguments
from gridlstm.run.arguments import option
from gridlstm.run.config import check_writable
from gridlstm.run.errors import ConfigError


@dataclass
class EvaluateConfig:
    ckpt_path: str = option("", "a checkpoint written by train.py")
    out: str | None = option(None, "the results directory (default outputs/evaluate/...)")
    device: str | None = option(None, "cpu, cuda or cuda:N (default: the run's accelerator)")


def config_groups() -> set[str]:
    from gridlstm.run.conf import find_conf_dir

    conf = find_conf_dir()
    return {p.name for p in conf.iterdir() if p.is_dir()} if conf else set()


def parse(argv: list[str]) -> tuple[EvaluateConfig, list[str]]:
    """(options, config overrides); every other ``key=value`` is an override."""
    cfg, overrides = arguments.parse(
        argv,
        EvaluateConfig,
        synonyms={"hydra.run.dir": "out"},
        # a config override is a dotted key or a config group (hardware=gpu), not a typo
        extra=lambda key: "." in key or key in config_groups(),
        extra_help="task.*=, model.*=, hardware.*=",
    )
    if not cfg.ckpt_path:
        raise ConfigError("no checkpoint given: ckpt_path=outputs/.../checkpoints/best-....ckpt")
    return cfg, overrides


def run(argv: list[str]) -> None:
    from gridlstm.run.console import quiet_third_party
    from gridlstm.run.evaluation import evaluate
    from gridlstm.run.hydra_runtime import register_resolvers, run_id

    quiet_third_party()
    register_resolvers()
    cfg, overrides = parse(argv)
    out = Path(cfg.out).expanduser() if cfg.out else Path("outputs") / "evaluate" / run_id()
    if (out / "metrics.json").exists():
        raise ConfigError(f"out={out} already holds a metrics.json; choose another out=")
    check_writable(out, "out")
    metrics = evaluate(Path(cfg.ckpt_path).expanduser(), out, overrides, cfg.device)
    for key, value in metrics.items():
        if key.startswith(("val/", "test/")):
            print(f"{key:<24} {value:.4f}")
    print(f"outputs: {out}")


def main(argv: list[str] | None = None) -> None:
    arguments.run_command(argv, __doc__, EvaluateConfig, run)


if __name__ == "__main__":
    main()
