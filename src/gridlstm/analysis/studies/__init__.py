"""The claims studies: a study's declared stages (or a machine profile's, or a plain studies
file's) run under one wall-clock deadline, resumably, on this machine or a Slurm cluster,
then tabled (``python -m gridlstm.queue``).

* `spec`: where the queue's studies come from and their checks, and the jobs they expand to
  (grid, cases, the frontier rule);
* `runner`: the procedure (slots, deadline, stop, restore from results committed earlier,
  tables and ``queue.json``); its entry is `run_studies`;
* `executors`: where a job runs (``launcher=local``: this machine's processes;
  ``launcher=slurm``: submitit, with the sweeps' launcher configs).
"""

from gridlstm.analysis.studies.runner import run_studies
from gridlstm.analysis.studies.spec import expand, load_studies

__all__ = ["expand", "load_studies", "run_studies"]
