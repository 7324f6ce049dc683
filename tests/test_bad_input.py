"""Bad input to every tool: exit code 2, one or two lines naming the option, no traceback,
and nothing written over an earlier run.

In-process, so that many cases stay cheap: train.py's entry (`gridlstm.train.main`) on
composed configs, and the ``main`` of the sampler, translator, evaluator, table command and
benchmark. (The same paths through real subprocesses: tests/test_train_cli.py,
tests/test_resume.py, tests/test_sample.py.)
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY, run_cli, write_corpus, write_pairs
from tests.test_configs import compose_train


@pytest.fixture(scope="module")
def earlier(tmp_path_factory) -> Path:
    """A finished run whose files no bad command may touch."""
    cwd = tmp_path_factory.mktemp("earlier")
    result = run_cli([*TINY, "logger=csv", f"hydra.run.dir={cwd / 'run'}"], cwd)
    assert result.returncode == 0, result.stderr[-2000:]
    run = cwd / "run"
    last = run / "checkpoints" / "last.ckpt"
    data = last.read_bytes()
    files = cwd / "files"
    files.mkdir()
    (files / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    (files / "empty.ckpt").write_bytes(b"")
    (files / "garbage.ckpt").write_bytes(b"PK\x03\x04 not really a checkpoint")
    craft_checkpoints(last, files)
    write_corpus(files / "text.txt", size=400)
    (files / "one_symbol.txt").write_text("z" * 8000)
    write_pairs(files / "handful.tsv", count=8)
    (files / "sweep").mkdir()
    return cwd


# A module outside the allow-list whose import, or whose function, leaves a sentinel file in
# the working directory, and a pickle that does the same when loaded: a crafted checkpoint
# that got either built would leave "hacked" behind.
PAYLOAD = """from pathlib import Path
Path("hacked").touch()
def make(*args, **kwargs):
    Path("hacked").touch()
"""


class Pickled:
    def __reduce__(self):
        return (os.system, ("touch hacked",))


def craft_checkpoints(last: Path, files: Path) -> None:
    """Checkpoints that load with weights_only=True but name code to build, one file per
    family: at the top level, nested at any depth, in lists, through interpolation, through
    torch.load / pickle, through hydra's reserved keys, and a pickled checkpoint."""
    (files / "sentinel_payload.py").write_text(PAYLOAD)
    (files / "evil.pkl").write_bytes(pickle.dumps(Pickled()))
    torch.save({"state_dict": {}, "payload": Pickled()}, files / "pickled.ckpt")
    evil = str(files / "evil.pkl")
    payload = {"_target_": "sentinel_payload.make"}
    base = torch.load(last, weights_only=True)
    lm_net = {"_target_": "gridlstm.nn.Grid2dLSTM", "input_size": 9, "hidden_size": 9}

    def lm(name: str, **changes) -> None:  # a language-model checkpoint (sample)
        crafted = copy.deepcopy(base)
        crafted["gridlstm_task"] = "language_model"
        crafted["hyper_parameters"].update(vocab_size=256, **changes)
        torch.save(crafted, files / name)

    def translation(name: str, **changes) -> None:  # a translation checkpoint (translate)
        crafted = copy.deepcopy(base)
        crafted["gridlstm_task"] = "translation"
        crafted["hyper_parameters"].update(changes)
        torch.save(crafted, files / name)

    def config(name: str, change) -> None:  # a stored training config (evaluate)
        crafted = copy.deepcopy(base)
        change(crafted["gridlstm_config"])
        torch.save(crafted, files / name)

    lm("crafted.ckpt", net={"_target_": "os.system", "command": "touch hacked"})
    lm("nested.ckpt", net={**lm_net, "input_size": payload})
    lm("deep.ckpt", net={**lm_net, "a": {"b": {"c": payload}}})
    lm("in_list.ckpt", net={**lm_net, "extra": [1, [payload]]})
    lm(
        "torch_load.ckpt",
        net={**lm_net, "input_size": {"_target_": "torch.load", "f": evil, "weights_only": False}},
    )
    lm("pickle_loads.ckpt", net={**lm_net, "x": {"_target_": "pickle.loads", "data": "x"}})
    lm("interpolated.ckpt", net={**lm_net, "input_size": "${.payload}", "payload": payload})
    lm("resolver.ckpt", net={**lm_net, "input_size": "${oc.env:HOME}"})
    lm("args.ckpt", net={**lm_net, "_args_": [payload]})
    lm("optimizer.ckpt", optimizer={"_target_": "sentinel_payload.make", "_partial_": True})
    translation(
        "translation_nested.ckpt", net={"_target_": "gridlstm.nn.Reencoder", "hidden_size": payload}
    )
    config("crafted_config.ckpt", lambda c: c["task"]["datamodule"].update(_target_="os.remove"))
    config("config_nested.ckpt", lambda c: c["task"]["datamodule"].update(digits=payload))
    config("config_list.ckpt", lambda c: c["model"]["net"].update(extra=[payload]))
    config(
        "config_interpolation.ckpt",
        lambda c: c["task"].update(payload=payload, datamodule="${task.payload}"),
    )
    config(
        "config_unused_node.ckpt",
        lambda c: c.update(x=payload, task={**c["task"], "datamodule": "${x}"}),
    )
    config("config_outside.ckpt", lambda c: c["task"]["datamodule"].update(digits="${oc.env:HOME}"))
    config(
        "config_torch_load.ckpt",
        lambda c: c["optim"].update(
            optimizer={"_target_": "torch.load", "f": evil, "weights_only": False}
        ),
    )
    config(
        "config_module.ckpt", lambda c: c["task"]["module"].update(_target_="sentinel_payload.make")
    )


def fill(text: str, places: dict[str, str]) -> str:
    for name, value in places.items():
        text = text.replace("{" + name + "}", value)
    return text


def snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def ckpt(earlier: Path, name: str) -> str:
    if name == "last":
        return str(earlier / "run" / "checkpoints" / "last.ckpt")
    return str(earlier / "files" / name)


# (tool, arguments, fragments the message must hold). Paths: {last}, {files}, {run}.
TRAIN = [
    ("model.net.num_layers=0", "model=grid2d: num_layers must be an integer >= 1"),
    ("model.net.hidden_size=-4", "model=grid2d: hidden_size must be an integer >= 1"),
    ("model.net.priority=width", "model=grid2d: priority must be one of"),
    ("model.net.dropout=1.5", "model=grid2d: dropout"),
    ("model.net.dropout=abc", "model.net.dropout=abc: expected a number (float)"),
    ("model.net.tied=maybe", "model.net.tied=maybe: expected true or false (bool)"),
    ("task.datamodule.digits=two", "task.datamodule.digits=two: expected an integer (int)"),
    ("task.datamodule.digits=0", "task=addition: digits must be an integer >= 1"),
    ("task.datamodule.batch_size=0", "task=addition: batch_size"),
    ("task.datamodule.val_size=0", "task=addition: val_size"),
    ("task.threshold=1.5", "task=addition: threshold must be in (0, 1]"),
    ("task.solved_above=abc", "task.solved_above=abc: expected a number or null"),
    (
        "callbacks.solved.stopping_threshold=high",
        "callbacks.solved.stopping_threshold=high: expected a number or null",
    ),
    (
        "task.datamodule.feedback=echo",
        "task=addition: feedback must be one of 'teacher', 'none'; got 'echo'",
    ),
    (
        "task=parity model=grid1d +task.datamodule.feedback=none",
        "task=parity has no answer to feed back; feedback applies to addition, memorization",
    ),
    ("task=parity", "model=grid2d takes sequence input but task=parity"),
    ("task=text", "task=text: no text file given: set task.path"),
    ("task=text task.path={files}/missing.txt", "task=text: text file"),
    ("task=text task.path={files}/one_symbol.txt", "is one symbol ('z') repeated"),
    (
        "task=translation model=reencoder task.path={files}/missing.tsv",
        "missing.tsv does not exist",
    ),
    (
        "task=translation model=reencoder task.path={files}/handful.tsv",
        "leaves no training pairs",
    ),  # 8 pairs; the default held-out sizes take 2000
    ("task=text task.path={files}/text.txt task.datamodule.vocab=word", "task=text: vocab"),
    ("task=text task.path={files}/text.txt task.datamodule.bptt=0", "task=text: bptt"),
    ("hardware=gpu", "hardware=gpu: no CUDA GPU is available"),
    ("hardware.devices=0", "hardware.devices=0"),
    ("hardware.devices=2", "hardware.devices=2: several processes", "hardware=ddp_cpu"),
    ("hardware.precision=17", "hardware=cpu / trainer: Precision 17 is invalid"),
    ("hardware.threads=0", "hardware=cpu: threads must be 'auto' or an integer >= 1"),
    (
        "hardware=gpu hardware.cuda_graphs=true",
        "cannot record under autocast (precision=bf16-mixed)",
        "hardware.precision=32-true",
    ),
    (
        "hardware=gpu hardware.precision=32-true hardware.cuda_graphs=true "
        "+trainer.accumulate_grad_batches=2",
        "with trainer.accumulate_grad_batches=2: graphed backwards do not accumulate",
        "accumulate_grad_batches=1",
    ),
    ("trainer.max_steps=-5", "trainer.max_steps=-5"),
    ("trainer.max_steps=0", "trainer.max_steps=0"),
    ("trainer.max_epochs=abc", "trainer.max_epochs=abc: give an integer"),
    ("trainer.gradient_clip_val=-1", "trainer.gradient_clip_val=-1"),
    ("trainer.val_check_interval=0", "trainer.val_check_interval=0"),
    (
        "trainer.val_check_interval=100000",
        "trainer.val_check_interval=100000: an epoch of task=addition has",
        "trainer.check_val_every_n_epoch=null",
    ),
    ("model.net.compile=fast", "model=grid2d: compile must be one of", "'reduce-overhead'"),
    ("trainer.limit_val_batches=0", "trainer.limit_val_batches=0"),
    ("+trainer.max_step=3", "trainer.max_step: not an argument of lightning.Trainer"),
    ("optim.optimizer.lr=-1", "optim.optimizer: Invalid learning rate"),
    ("optim.optimizer._target_=torch.optim.Adamm", "optim.optimizer: Error loading"),
    (
        "optim.scheduler={_target_:torch.optim.lr_scheduler.StepLR,_partial_:true}",
        "optim.scheduler: StepLR",
    ),
    ("seed=-3", "seed=-3"),
    ("resume=maybe", "resume=maybe: valid choices are false, auto"),
    ("ckpt_path={files}/missing.ckpt", "ckpt_path=", "no such file"),
    ("ckpt_path={files}/garbage.ckpt", "ckpt_path=", "not a readable checkpoint"),
    ("ckpt_path={files}/empty.ckpt", "ckpt_path=", "an empty file, not a checkpoint"),
    ("ckpt_path={files}/text.txt", "ckpt_path=", "a text file (it begins"),
    ("ckpt_path={files}/truncated.ckpt", "ckpt_path=", "not a readable checkpoint"),
    ("ckpt_path={files}/pickled.ckpt", "ckpt_path=", "not a readable checkpoint"),
    ("ckpt_path={last} model=stacked_lstm", "the checkpoint is of model=grid2d"),
    (
        "ckpt_path={last} task=memorization",
        "the checkpoint is of task=addition, this run is task=memorization",
    ),
    ("callbacks.divergence.max_loss=-1", "max_loss must be a positive number"),
    ("callbacks.divergence.skip_steps=-1", "skip_steps must be an integer >= 0"),
    ("callbacks.progress_bar.interval_s=0", "interval_s must be > 0 seconds, got 0"),
]
SAMPLE = [
    (["ckpt_path={last}", "length=0"], "length must be in [1, 10,000,000], got 0"),
    (["ckpt_path={last}", "temperature=-1"], "temperature must be >= 0"),
    (["ckpt_path={last}", "top_k=0"], "top_k must be >= 1"),
    (["ckpt_path={last}", "temperature=nan"], "temperature must be >= 0"),
    (["ckpt_path={last}", "length=100000000000"], "length must be in [1, 10,000,000]"),
    (["ckpt_path={files}"], "a directory, not a checkpoint file"),
    (["ckpt_path={last}", "colour=red"], "unknown argument 'colour=red'"),
    (["length=10"], "no checkpoint given: ckpt_path="),
    (["ckpt={last}", "length=0"], "note: ckpt= is now ckpt_path=", "length must be in [1,"),
    (["--length", "10"], "arguments are key=value", "write length=VALUE"),
    (["ckpt_path={files}/missing.ckpt"], "no such file"),
    (["ckpt_path={files}/garbage.ckpt"], "not a readable checkpoint"),
    (["ckpt_path={files}/empty.ckpt"], "an empty file, not a checkpoint"),
    (["ckpt_path={files}/truncated.ckpt"], "not a readable checkpoint"),
    (["ckpt_path={files}/pickled.ckpt"], "not a readable checkpoint"),
    (["ckpt_path={last}"], "is not a language-model checkpoint"),
    (["ckpt_path={files}/crafted.ckpt"], "net._target_='os.system' is not one of the suite's"),
    (["ckpt_path={files}/nested.ckpt"], "net.input_size._target_ is not allowed there"),
    (["ckpt_path={files}/deep.ckpt"], "net.a.b.c._target_ is not allowed there"),
    (["ckpt_path={files}/in_list.ckpt"], "net.extra[1][0]._target_ is not allowed there"),
    (["ckpt_path={files}/torch_load.ckpt"], "net.input_size._target_ is not allowed there"),
    (["ckpt_path={files}/pickle_loads.ckpt"], "net.x._target_ is not allowed there"),
    (["ckpt_path={files}/interpolated.ckpt"], "net.input_size._target_ is not allowed there"),
    (["ckpt_path={files}/resolver.ckpt"], "calls the resolver 'oc.env'"),
    (["ckpt_path={files}/args.ckpt"], "net._args_ is not allowed there"),
    (["ckpt_path={files}/optimizer.ckpt"], "optimizer._target_='sentinel_payload.make' is not one"),
    (["ckpt_path={last}", "device=tpu9"], "device=tpu9"),
    (["ckpt_path={last}", "device=cuda"], "device=cuda"),
]
TRANSLATE = [
    (["ckpt_path={last}", "input={files}/text.txt"], "is not a translation checkpoint"),
    (["ckpt_path={files}/truncated.ckpt", "input={files}/text.txt"], "not a readable checkpoint"),
    (["ckpt_path={last}", "beam=oops"], "beam"),
    (["speed=2"], "unknown argument 'speed=2'"),
    (
        ["ckpt_path={files}/translation_nested.ckpt", "input={files}/text.txt"],
        "net.hidden_size._target_ is not allowed there",
    ),
    (["ckpt_path={files}/pickled.ckpt", "input={files}/text.txt"], "not a readable checkpoint"),
    (["ckpt_path={last}", "input={files}/text.txt", "device=tpu9"], "device=tpu9"),
    (
        ["ckpt_path={last}", "input={files}/text.txt", "length_penalty=nan"],
        "length_penalty must be",
    ),
    (
        ["ckpt_path={last}", "input={files}/text.txt", "output={files}/text.txt/out.en"],
        "text.txt is not a writable directory",
    ),
]
EVALUATE = [
    ([], "no checkpoint given: ckpt_path="),
    (["ckpt_path={files}/missing.ckpt"], "ckpt_path=", "no such file"),
    (["ckpt_path={files}/truncated.ckpt"], "ckpt_path=", "not a readable checkpoint"),
    (["ckpt_path={last}", "task.datamodule.digitz=5"], "task.datamodule.digitz"),
    (["ckpt_path={last}", "trainer.max_steps=5"], "trainer.max_steps: only task.*"),
    (["ckpt_path={last}", "model.net.num_layers=3"], "its weights do not fit"),
    (["ckpt_path={last}", "nonsense"], "argument 'nonsense' is not key=value"),
    (["ckpt_path={files}/crafted_config.ckpt"], "_target_='os.remove' is not one of"),
    (["ckpt_path={files}/pickled.ckpt"], "not a readable checkpoint"),
    (["ckpt_path={files}/config_nested.ckpt"], "digits._target_ is not allowed there"),
    (["ckpt_path={files}/config_list.ckpt"], "extra[0]._target_ is not allowed there"),
    (["ckpt_path={files}/config_interpolation.ckpt"], "datamodule._target_='sentinel_payload"),
    (["ckpt_path={files}/config_unused_node.ckpt"], "Interpolation key 'x' not found"),
    (["ckpt_path={files}/config_outside.ckpt"], "calls the resolver 'oc.env'"),
    (["ckpt_path={files}/config_torch_load.ckpt"], "_target_='torch.load' is not one of"),
    (["ckpt_path={files}/config_module.ckpt"], "sentinel_payload.make' is not one of"),
    (["ckpt_path={last}", "task.datamodule.digits=${oc.env:HOME}"], "calls the resolver"),
    (["ckpt_path={last}", "hardware.accelerator=gpu"], "no CUDA GPU is available"),
    (["ckpt_path={last}", "task=5"], "task: a group of options, not a value"),
    (["ckpt_path={last}", "task.datamodule.digits=many"], "task.datamodule.digits=many: expected"),
    (["ckpt_path={last}", "model.net=null"], "model.net: a group of options, not a value"),
    (["ckpt_path={last}", "out={files}/text.txt/scores"], "text.txt is not a writable directory"),
    (["ckpt_path={files}"], "a directory, not a checkpoint file"),
    (["ckpt_path={last}", "hardware.accelerator=tpu9"], "hardware:"),
    (["ckpt_path={last}", "hardware.precision=17"], "hardware: Precision 17 is invalid"),
]
TABLES = [
    (["sweep={files}/nowhere"], "not a directory"),
    (["sweep={files}/sweep"], "no job"),
    ([], "give one of sweep=multirun/<date>/<time>_<id>, table=path/to/table.csv, study="),
    (["sweep={files}/sweep", "table=t.csv"], "give one of sweep="),
    (["table={files}/nowhere.csv"], "table= needs metric="),
    (["table={files}/nowhere.csv", "metric=val/acc"], "nowhere.csv: no such file"),
    (["table={files}/nowhere.csv", "metric=val/acc", "mode=best"], "mode=best: choose max"),
    (["{files}/sweep"], "argument '", "is not key=value; valid: sweep="),
]
BENCH = [
    (["hidden=0"], "hidden must be >= 1"),
    (["repeats=0"], "repeats must be >= 1"),
    (["warmup=-1"], "warmup must be >= 0"),
    (["backends=fast,warp"], "backends=fast,warp: choose from"),
    (["device=tpu9"], "device=tpu9"),
    (["device=cuda"], "device=cuda: no CUDA device is available"),
    (["device=mps"], "device=mps"),
    (["dtype=float16"], "dtype=float16: choose float32 or bfloat16"),
    (["json={files}/text.txt/out.json"], "json="),
    (["layers=two"], "layers: Value 'two'"),
    (["compile=fast"], "compile=fast: choose default"),
    (["--device", "cuda"], "'--device': arguments are key=value", "write device=VALUE"),
    (["speed=max"], "unknown argument 'speed=max'; valid: device="),
    (["presets=true", "preset_threads=0"], "preset_threads=0: thread counts >= 1, e.g. 1,2"),
    (["presets=true", "device=cuda:0"], "device=cuda:0"),
]

CASES = (
    [("train", [arg], fragments) for arg, *fragments in TRAIN]
    + [("sample", args, fragments) for args, *fragments in SAMPLE]
    + [("translate", args, fragments) for args, *fragments in TRANSLATE]
    + [("evaluate", args, fragments) for args, *fragments in EVALUATE]
    + [("tables", args, fragments) for args, *fragments in TABLES]
    + [("bench", args, fragments) for args, *fragments in BENCH]
)


def test_there_are_at_least_sixty_cases_across_the_tools():
    assert len(CASES) >= 60 and {tool for tool, _, _ in CASES} >= {
        "train",
        "sample",
        "tables",
        "bench",
    }


def run_tool(tool: str, args: list[str], tmp_path: Path) -> int:
    if tool == "train":
        from gridlstm.run.training import main

        own = args[0].split(" ")
        # The addition sizes of TINY apply to the default task only.
        base = [o for o in TINY if not o.startswith("task.")] if "task=" in args[0] else TINY
        overrides = [*base, "logger=csv", "print_config=false", *own]
        before = torch.get_num_threads()
        try:
            main(compose_train(overrides, tmp_path / "new_run"))
        finally:
            torch.set_num_threads(before)
        return 0
    module = __import__(f"gridlstm.{tool}", fromlist=["main"])
    returned = module.main(args)
    return returned if isinstance(returned, int) else 0


@pytest.mark.parametrize(
    ("tool", "args", "fragments"), CASES, ids=[f"{t}:{' '.join(a)[:50]}" for t, a, _ in CASES]
)
def test_bad_input_is_one_line_and_spares_earlier_runs(
    earlier, tmp_path, monkeypatch, capsys, tool, args, fragments
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(earlier / "files"))  # the payload module is importable
    places = {"last": ckpt(earlier, "last"), "files": str(earlier / "files")}
    args = [fill(arg, places) for arg in args]
    before = snapshot(earlier)
    with pytest.raises(SystemExit) as stop:
        code = run_tool(tool, args, tmp_path)
        raise SystemExit(code)
    out, err = capsys.readouterr()
    assert stop.value.code == 2, err[-2000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) <= 2, err  # the message (and a note where an old argument name was used)
    assert not out.strip(), out  # nothing printed before the error (or after it)
    assert "Traceback" not in out + err
    for fragment in fragments:
        assert fill(fragment, places) in err, err
    assert snapshot(earlier) == before
    assert not (tmp_path / "hacked").exists()
    assert "sentinel_payload" not in sys.modules
    if tool == "train":
        assert not (tmp_path / "new_run" / "metrics.json").exists()
        assert not list((tmp_path / "new_run").rglob("*.ckpt"))


def test_a_metrics_file_is_never_a_bare_nan(earlier):
    text = (earlier / "run" / "metrics.json").read_text()
    json.loads(text)  # strict JSON: a NaN would fail here
    assert "NaN" not in text
