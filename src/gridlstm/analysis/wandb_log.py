"""A study's evidence logged to Weights & Biases: its answer and its declared tables and figures.

Why: W&B is the suite's tracker, where a researcher already reads the training runs; the
claims' verdicts and result tables belong beside them, as the pages show them. One W&B run per
study (job type ``evidence``): the answer's numbers in the run summary, each table of
``tables:`` as a ``wandb.Table`` rendered from the same records as the page, each declared
figure as an image. Offline without credentials (`gridlstm.run.loggers.wandb_mode`); nothing
here writes into the repository but W&B's own folder (``dir``, git-ignored by default).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from gridlstm.analysis import confirmatory, declared, evidence, record_tables


def answer_summary(study: declared.Study) -> dict[str, Any]:
    """The page's answer as numbers: the deciding outcome (the confirmatory one once run)."""
    done = confirmatory.confirmatory_outcome(study)
    shown = done or evidence.outcome(study)
    numbers = {
        "p": shown.p,
        "a_mean": shown.a.mean,
        "a_sd": shown.a.sd,
        "a_n": shown.a.n,
        "b_mean": shown.b.mean,
        "b_sd": shown.b.sd,
        "b_n": shown.b.n,
        "macs_ratio": shown.ratio,
    }
    return {
        "verdict": shown.word,
        "scope": shown.scope,
        "test": shown.test,
        "metric": shown.metric,
        "a": shown.a.label,
        "b": shown.b.label,
        **{k: v for k, v in numbers.items() if not (isinstance(v, float) and math.isnan(v))},
    }


def log_study(study: declared.Study, project: str, mode: str, directory: Path) -> str:
    """One W&B run for ``study``; returns its run directory."""
    import wandb

    run = wandb.init(
        project=project,
        name=f"evidence-{study.name}",
        job_type="evidence",
        config={"study": study.name, "claim": study.prose.get("statement", "")},
        mode=mode,
        dir=str(directory),
        reinit="finish_previous",
    )
    try:
        for name, spec in study.tables.items():
            columns, data = record_tables.cells(study.folder, spec)
            run.log({f"tables/{name}": wandb.Table(columns=columns, data=data)})
            if spec.figure and (study.folder / spec.figure.file).is_file():
                run.log({f"figures/{name}": wandb.Image(str(study.folder / spec.figure.file))})
        run.summary.update(answer_summary(study))
    finally:
        run.finish()
    return str(run.dir)
