"""Paper-shaped tables and curves from a sweep's jobs.

    python -m gridlstm.tables sweep=multirun/<date>/<time>_<id>    (or: gridlstm-tables ...)
    python -m gridlstm.tables table=docs/claims/<claim>/table.csv metric=val/bpc mode=min
    python -m gridlstm.tables study=paper_regime      (or study=all)
    python -m gridlstm.tables study=all wandb=gridlstm   (the pages, then W&B: offline unless
                                                          credentials exist)
    python -m gridlstm.tables report=deep_tied       (its study.yaml reports:; or report=all)
    python -m gridlstm.tables check=true

Writes table.md, table.csv, curves.png (and, over seeds, table_seeds.csv and verdicts.md)
into the sweep directory; what they hold: `gridlstm.analysis.sweep_report`. With ``table=``, only
verdicts.md (or ``out=``) beside a table.csv it wrote before (the rule:
`gridlstm.analysis.verdicts`). With ``study=``, the generated parts of the evidence pages (a
study page's answer, the claims summary, the README's evidence table) from the study's
declaration and records; with ``check=true``, nothing is written: every generated part is
rendered in memory and the first difference on each page is named (exit 1).
The declarations and the page format: `gridlstm.analysis.evidence`, `gridlstm.analysis.pages`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gridlstm.run import arguments
from gridlstm.run.arguments import option
from gridlstm.run.errors import ConfigError


@dataclass
class TablesConfig:
    sweep: str = option("", "a multirun directory, e.g. multirun/2026-11-21/10-00-00_ab12cd")
    thresholds: str = option(
        "", "also samples to these values of the main validation metric, e.g. 0.9,0.99"
    )
    table: str = option("", "instead of a sweep: a table.csv to write verdicts.md beside")
    metric: str = option("", "table=: the metric compared across cells, e.g. val/bpc")
    mode: str = option("max", "table=: max or min, the metric's better direction")
    within: str = option("", "table=: swept columns held fixed, e.g. task.datamodule.bits")
    out: str = option("verdicts.md", "table=: the file written beside it, e.g. verdicts_acc.md")
    study: str = option(
        "", "a declared study (docs/claims/<study>/study.yaml) or all: write its pages"
    )
    report: str = option("", "a study whose reports: (study.yaml) to write beside its page, or all")
    check: bool = option(False, "check every evidence page against its records; write nothing")
    root: str = option(".", "study= and check=: the repository root the pages are under")
    wandb: str = option(
        "", "study=: also log each study's answer, tables and figures to this W&B project"
    )
    wandb_dir: str = option(".", "wandb=: the folder W&B writes under (its wandb/ folder)")


def parse(argv: list[str]) -> TablesConfig:
    cfg, _ = arguments.parse(argv, TablesConfig)
    if sum(map(bool, (cfg.sweep, cfg.table, cfg.study, cfg.report, cfg.check))) != 1:
        raise ConfigError(
            "give one of sweep=multirun/<date>/<time>_<id>, table=path/to/table.csv, "
            "study=<name or all>, report=<name or all> or check=true"
        )
    if cfg.wandb and not cfg.study:
        raise ConfigError(
            f"wandb={cfg.wandb} logs the evidence pages' tables: give it with study=<name or all>"
        )
    if cfg.table and not cfg.metric:
        raise ConfigError("table= needs metric=, the column to compare (e.g. metric=val/acc)")
    if cfg.mode not in ("max", "min"):
        raise ConfigError(f"mode={cfg.mode}: choose max or min")
    try:
        [float(t) for t in str(cfg.thresholds).split(",") if t.strip()]
    except ValueError:
        raise ConfigError(
            f"thresholds={cfg.thresholds}: numbers separated by commas, e.g. 0.9,0.99"
        ) from None
    return cfg


def run(argv: list[str]) -> None:
    from gridlstm.analysis.sweep_report import report, verdicts_from_csv
    from gridlstm.run.hydra_runtime import register_resolvers

    cfg = parse(argv)
    if cfg.study or cfg.check or cfg.report:
        evidence_pages(cfg)
        return
    if cfg.table:
        within = [k for k in cfg.within.split(",") if k]
        table = Path(cfg.table).expanduser()
        written = verdicts_from_csv(table, cfg.metric, cfg.mode, within, cfg.out)
        print(written.read_text() + f"wrote {written}")
        return
    register_resolvers()
    thresholds = [float(t) for t in str(cfg.thresholds).split(",") if t.strip()]
    report(Path(cfg.sweep).expanduser(), thresholds)


def evidence_pages(cfg: TablesConfig) -> None:
    from gridlstm.analysis import pages, preregistration

    root = Path(cfg.root).expanduser()
    if cfg.check:
        problems = pages.check(root)
        for line in preregistration.unverified(root):
            print(line)  # pre-registration without git history: not a problem, not checked
        if problems:
            print("\n".join(problems))
            raise SystemExit(1)
        print("every evidence page matches its records")
        return
    if cfg.report:
        for path in pages.write_reports(root, cfg.report):
            print(f"wrote {path}")
        return
    for page in pages.write(root, cfg.study):
        print(f"wrote {page}")
    if cfg.wandb:
        from gridlstm.analysis import declaration, declared, wandb_log
        from gridlstm.run.loggers import wandb_mode

        for study in declaration.load_all(root / declared.CLAIMS_DIR):
            if cfg.study in ("all", study.name):
                where = wandb_log.log_study(
                    study, cfg.wandb, wandb_mode(), Path(cfg.wandb_dir).expanduser()
                )
                print(f"logged {study.name} to W&B ({wandb_mode()}): {where}")


def main(argv: list[str] | None = None) -> None:
    arguments.run_command(argv, __doc__, TablesConfig, run)


if __name__ == "__main__":
    main()
