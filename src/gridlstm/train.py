"""Train a Grid LSTM: Hydra overrides over ``conf/``, e.g. ``model=grid2d task=addition``.

    python train.py model=grid2d task=addition hardware=cpu      (the repository's entry)
    python -m gridlstm.train ...  or  gridlstm-train ...          (the same, installed)

``--help`` lists the config groups and their options (Hydra's help); ``-m`` runs a sweep;
``dry_run=true`` checks every job of a run or sweep and prints what each would do
(`gridlstm.run.dry_run`), writing nothing.
The config directory is the source checkout's ``conf/``, else ``./conf``; ``GRIDLSTM_CONF``
names another. What a run does and writes: `gridlstm.run.training`.
"""

from __future__ import annotations

import sys
from pathlib import Path

ONE_CONFIG_FLAGS = ("--cfg", "-c", "--info", "-i", "--shell-completion", "-sc")


def mode_flags_problem(argv: list[str]) -> str | None:
    """``-m`` with a flag that shows one config (Hydra ends that in a traceback)."""
    if not any(arg in ("-m", "--multirun") for arg in argv):
        return None
    flag = next((arg for arg in argv if arg.split("=")[0] in ONE_CONFIG_FLAGS), None)
    if flag is None:
        return None
    return (
        f"{flag} shows one config and -m runs a sweep: check every job of the sweep with "
        "dry_run=true (python train.py -m ... dry_run=true), or drop -m to see one config"
    )


def shared_names(argv: list[str]) -> list[str]:
    """The names every command shares (``device=``, ``out=``) as this command's Hydra
    overrides: ``device=cpu|cuda|cuda:N|mps`` is ``hardware=`` (and the GPU's index),
    ``out=DIR`` the run directory (the sweep's with ``-m``). A device that is not here is
    one line, as in the other commands."""
    from gridlstm.run.config import check_device

    sweep = any(arg in ("-m", "--multirun") for arg in argv)
    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key == "device":
            check_device(value)
            kind, _, index = value.partition(":")
            out.append(f"hardware={'gpu' if kind == 'cuda' else kind}")
            if index:
                out.append(f"hardware.devices=[{index}]")
        elif sep and key == "out":
            out.append(f"hydra.{'sweep' if sweep else 'run'}.dir={value}")
        else:
            out.append(arg)
    return out


def main(conf: Path | None = None) -> None:
    """Check the command line (one line, exit 2, before any work), then run Hydra."""
    import hydra
    from omegaconf import DictConfig

    from gridlstm.run import dry_run
    from gridlstm.run.conf import find_conf_dir
    from gridlstm.run.config import compose_problem, output_dir_problem, sweep_note
    from gridlstm.run.errors import ConfigError
    from gridlstm.run.hydra_runtime import register_resolvers
    from gridlstm.run.sweeps import missing_plugin

    conf = conf or find_conf_dir()
    if conf is None:
        print(
            "error: no conf/train.yaml found: run from the repository root or set "
            "GRIDLSTM_CONF=/path/to/conf",
            file=sys.stderr,
        )
        raise SystemExit(2)
    register_resolvers()
    try:
        argv = shared_names(sys.argv[1:])
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    sys.argv[1:] = argv  # Hydra reads the command line itself
    if problem := mode_flags_problem(argv):
        print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    if dry := dry_run.requested(argv):
        if isinstance(dry, str):
            print(f"error: {dry}", file=sys.stderr)
            raise SystemExit(2)
        if problem := missing_plugin(argv):
            print(f"error: {problem}", file=sys.stderr)
            raise SystemExit(2)
        dry_run.main(argv, conf)
    if problem := missing_plugin(argv) or output_dir_problem(argv) or compose_problem(argv, conf):
        print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    if "-m" not in argv and "--multirun" not in argv and (note := sweep_note(argv, conf)):
        print(note, file=sys.stderr)

    if not [arg for arg in argv if arg.startswith("-") and arg not in ("-m", "--multirun")]:
        # A run (not --help, --cfg, ...): Lightning is imported before Hydra configures
        # logging, so that its info lines ("GPU available: ...") keep Lightning's own handler
        # and print once, not again through Hydra's.
        import lightning.pytorch  # noqa: F401

    @hydra.main(version_base="1.3", config_path=str(conf), config_name="train")
    def run(cfg: DictConfig) -> float | None:
        from gridlstm.run.training import main as train

        metrics = train(cfg)
        return metrics.get(cfg.task.monitor)

    run()


if __name__ == "__main__":
    main()
