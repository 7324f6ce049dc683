"""``logger=csv``: Lightning's CSV logger, continued across a resume instead of restarted.

Why: Lightning's writer deletes ``csv/metrics.csv`` when it finds one, so a run resumed with
``resume=auto`` kept only the rows after the resume and every curve drawn from it started
mid-run. This writer keeps the file: on its first save it drops the earlier rows at or after
the first step it is about to write (the part of the old run that the resume discards, when
the checkpoint is older than the last row) and appends, widening the header when new
columns appear.
"""

from __future__ import annotations

import csv
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


class ContinuedWriter(ExperimentWriter):
    def __init__(self, log_dir: str) -> None:
        self.continued = False
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:  # Lightning's deletes metrics.csv here
        return

    def _earlier_rows(self) -> tuple[list[str], list[dict[str, Any]]]:
        if not self._fs.isfile(self.metrics_file_path):
            return [], []
        with self._fs.open(self.metrics_file_path, "r", newline="") as handle:
            reader = csv.DictReader(handle)
            return list(reader.fieldnames or []), list(reader)

    def save(self) -> None:
        if self.metrics and not self.continued:
            self.continued = True
            keys, rows = self._earlier_rows()
            if rows:
                first = min(int(m["step"]) for m in self.metrics)
                kept = [r for r in rows if r.get("step") and int(float(r["step"])) < first]
                self.metrics_keys = sorted(set(keys) | set().union(*self.metrics))
                with self._fs.open(self.metrics_file_path, "w", newline="") as handle:
                    writer = csv.DictWriter(handle, fieldnames=self.metrics_keys)
                    writer.writeheader()
                    writer.writerows(kept)
        super().save()


class ContinuedCSVLogger(CSVLogger):
    """`lightning.pytorch.loggers.CSVLogger` whose metrics.csv survives a resume."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ContinuedWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ContinuedWriter(log_dir=self.log_dir)
        return self._experiment
