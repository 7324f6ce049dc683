"""Multiply-adds counted again for jobs that ran before runs recorded them."""

from __future__ import annotations

import json

from omegaconf import OmegaConf

from gridlstm.analysis import counted_macs
from tests.conftest import ROOT

TINY = [
    "task=addition",
    "model=grid2d",
    "model.net.hidden_size=8",
    "model.net.num_layers=2",
    "task.datamodule.digits=3",  # not the default (2): dropping it changes the length
    "task.datamodule.batch_size=8",
    "task.datamodule.batches_per_epoch=2",
    "task.datamodule.val_size=16",
    "task.datamodule.test_size=16",
    "trainer.max_steps=2",
    "logger=csv",
    "seed=3",
]


def test_a_job_without_its_multiply_adds_gets_the_count_its_run_made(cli, monkeypatch):
    """The count is the run's own (`TaskModule.record_macs` on the composed model), and only
    for the network the job trained: another parameter count, a task size the overrides do
    not name, or overrides that no longer compose leave it unknown rather than wrong."""
    done = cli(*TINY, f"hydra.run.dir={cli.cwd / 'run'}")
    assert done.returncode == 0, done.stderr
    record = json.loads((cli.cwd / "run" / "metrics.json").read_text())
    assert record["macs_per_sample"] > 0
    job = cli.cwd / "results" / "jobs" / "tiny"
    job.mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(TINY), job / "overrides.yaml")  # as the queue copies it
    older = {k: v for k, v in record.items() if k != "macs_per_sample"}
    (job / "metrics.json").write_text(json.dumps(older))
    monkeypatch.chdir(ROOT)
    assert counted_macs.macs_of(job) == record["macs_per_sample"]
    (job / "metrics.json").write_text(json.dumps({**older, "params": older["params"] + 1}))
    assert counted_macs.macs_of(job) is None
    # The task's size left to the preset's default (which may have changed since the run):
    # the same parameters, another length, so another count; unknown, not wrong.
    unsized = [o for o in TINY if not o.startswith("task.datamodule.digits=")]
    OmegaConf.save(OmegaConf.create(unsized), job / "overrides.yaml")
    (job / "metrics.json").write_text(json.dumps(older))
    assert counted_macs.macs_of(job) is None
    # ... unless the declaration names it (a verdict cell's defaults: what the run had)
    given = {"task.datamodule.digits": 3, "model.net.priority": "default"}  # only task.* used
    assert counted_macs.macs_of(job, given) == record["macs_per_sample"]
    assert counted_macs.macs_of(job, {"task.datamodule.digits": 2}) != record["macs_per_sample"]
    OmegaConf.save(OmegaConf.create([*TINY, "model.net.hidden_sise=8"]), job / "overrides.yaml")
    (job / "metrics.json").write_text(json.dumps(older))
    assert counted_macs.macs_of(job) is None
    (job / "metrics.json").write_text(json.dumps({**older, "macs_per_sample": 5}))
    assert counted_macs.macs_of(job) == 5  # as recorded
