"""The GPU check's one small JSON (``check.json``): a verdict from any GPU allocation.

Why one file: a GPU allocation may be short and the person reading its results may not be
the one who ran it. ``scripts/gpu_check.sh`` leaves per-step files (pytest's report, the
bench JSONs, the smoke runs' queue.json); this reads them back into one object:

* ``device`` and each step's exit status and seconds;
* ``tests``: every ``-m gpu`` test by id with its outcome (passed, failed, error, skipped),
  from pytest's JUnit XML report: the equivalence matrix's rows on CUDA among them;
* ``targets``: the bench's speed targets per dtype (`gridlstm.benchmarks.targets`), each with
  its measured value and whether it was met;
* ``smoke``: each task's smoke runs and their statuses;
* ``step_speeds``: each GPU study shape's seconds per 100k samples by model and depth, from
  ``step_speed_<shape>.json`` (what the studies' GPU-hours are planned from);
* ``verdict``: ``pass`` when every step exited 0 (or was skipped), no test failed and every
  timed target was met; else ``fail``, with ``problems`` naming each reason.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any


def test_outcomes(junit: Path) -> dict[str, str]:
    """Each test case's outcome from pytest's ``--junitxml`` report (``file::name`` ids)."""
    outcomes = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        classname, name = case.get("classname", ""), case.get("name", "")
        test_id = f"{classname.replace('.', '/')}.py::{name}" if classname else name
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
        outcomes[test_id] = outcome
    return outcomes


def step_speeds(out: Path) -> dict[str, list[dict[str, Any]]]:
    """Each ``step_speed_<shape>.json`` in ``out`` (scripts/step_speed.py's ``json=``) as
    rows of model, depth, parameters and seconds per 100k samples."""
    return {
        path.stem.removeprefix("step_speed_"): json.loads(path.read_text())["rows"]
        for path in sorted(out.glob("step_speed_*.json"))
    }


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def summarize(
    out: Path, device: str, steps: list[tuple[str, str, int]], judge_targets: bool = True
) -> dict[str, Any]:
    """The check's results in ``out`` as one object (see the module's docstring). A dry run
    on the CPU does not judge the targets (GPU baselines mean nothing there)."""
    problems = [f"step {n} exited {s}" for n, s, _ in steps if s not in ("0", "skipped")]
    junit = out / "pytest.xml"
    tests = test_outcomes(junit) if junit.is_file() else {}
    problems += [f"test {t} {o}" for t, o in tests.items() if o in ("failed", "error")]
    targets: dict[str, list[dict[str, Any]]] = {}
    for dtype in ("float32", "bfloat16"):
        bench = read_json(out / f"bench_{dtype}.json")
        if isinstance(bench, dict):
            targets[dtype] = bench.get("targets", [])
            problems += [
                f"target {t.get('target')} ({dtype}) not met: {t.get('measured')} against "
                f"{t.get('goal')}"
                for t in targets[dtype]
                if t.get("met") is False and judge_targets
            ]
    smoke = {}
    for report in sorted((out / "smoke").glob("*/*/queue.json")):
        data = read_json(report) or {}
        smoke[report.parts[-3]] = {j.get("job"): j.get("status") for j in data.get("jobs", [])}
    return {
        "device": device,
        "steps": [{"step": n, "exit": s, "seconds": sec} for n, s, sec in steps],
        "tests": tests,
        "targets": targets,
        "smoke": smoke,
        "step_speeds": step_speeds(out),
        "verdict": "fail" if problems else "pass",
        "problems": problems,
    }


def main(argv: list[str] | None = None) -> None:
    """``python -m gridlstm.benchmarks.gpu_check OUT DEVICE "step exit seconds"...``: writes
    ``OUT/check.json`` (and ``OUT/targets.json``, ``OUT/summary.json`` as before)."""
    given = argv if argv is not None else sys.argv[1:]
    usage = 'usage: python -m gridlstm.benchmarks.gpu_check OUT DEVICE ["STEP EXIT SECONDS" ...]'
    steps = [r.split() for r in given[2:]]
    bad = [r for r, s in zip(given[2:], steps, strict=True) if len(s) != 3 or not s[2].isdigit()]
    why = None
    if len(given) < 2:
        why = "OUT and DEVICE are required"
    elif bad:
        why = f"{bad[0]!r} is not 'STEP EXIT SECONDS'"
    elif not Path(given[0]).is_dir():
        why = f"OUT={given[0]} is not a folder (scripts/gpu_check.sh writes it)"
    if why is not None:
        print(f"error: {why}; {usage}", file=sys.stderr)
        raise SystemExit(2)
    out_dir, device = Path(given[0]), given[1]
    steps = [(n, s, int(sec)) for n, s, sec in steps]
    check = summarize(out_dir, device, steps, judge_targets=not device.startswith("cpu"))
    (out_dir / "check.json").write_text(json.dumps(check, indent=1) + "\n")
    (out_dir / "targets.json").write_text(
        json.dumps({"device": device, **check["targets"]}, indent=2) + "\n"
    )
    steps_text = [{**s, "seconds": str(s["seconds"])} for s in check["steps"]]
    summary = {"device": device, "steps": steps_text}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    for row in check["steps"]:
        print(f"{row['step']:>15}: exit {row['exit']:>7} ({row['seconds']} s)")
    print(f"gpu_check: {check['verdict']}" + "".join(f"\n  {p}" for p in check["problems"]))


if __name__ == "__main__":
    main()
