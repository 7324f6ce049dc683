"""Comparison presets: models of one table get comparable recurrent parameter counts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from tests.test_configs import compose_train


def built_parameters(overrides: list[str], tmp_path) -> int:
    """Parameters of the model that train.py would build (budget solved), on the meta device."""
    from gridlstm.run.build import build_module

    cfg = compose_train(overrides, tmp_path)
    with torch.device("meta"):
        return build_module(cfg, instantiate(cfg.task.datamodule)).num_parameters


@pytest.mark.parametrize(
    ("experiment", "layers"),
    [
        ("addition_cpu", 2),
        ("addition_cpu", 4),
        ("memorization_cpu", 2),
        ("memorization_cpu", 4),
    ],
)
def test_presets_give_comparable_parameter_counts(experiment, layers, tmp_path):
    cfg = compose_train([f"experiment={experiment}"], tmp_path)
    assert cfg.task.name == experiment.rsplit("_", 1)[0]
    budget = cfg.param_budget
    for model in ("stacked_lstm", "grid2d_untied", "grid2d"):
        overrides = [f"experiment={experiment}", f"model={model}", f"model.net.num_layers={layers}"]
        count = built_parameters(overrides, tmp_path)
        assert abs(count - budget) <= 0.02 * budget, (model, count, budget)


@pytest.mark.parametrize("experiment", ["addition_paper", "memorization_paper"])
def test_paper_presets_give_every_model_the_same_width(experiment, tmp_path):
    """The paper's protocol compares at equal width (docs/protocols.md section 2): the untied
    2-LSTM grows with depth, the tied one does not, and each run reports its parameters."""
    counts = {}
    for model in ("stacked_lstm", "grid2d_untied", "grid2d"):
        for layers in (2, 8):
            overrides = [f"experiment={experiment}", f"model={model}"]
            cfg = compose_train([*overrides, f"model.net.num_layers={layers}"], tmp_path)
            assert cfg.param_budget is None and cfg.model.net.hidden_size == 400
            counts[model, layers] = built_parameters(
                [*overrides, f"model.net.num_layers={layers}"], tmp_path
            )
    assert counts["grid2d", 2] == counts["grid2d", 8]
    assert counts["grid2d_untied", 8] > 3 * counts["grid2d_untied", 2]
    assert counts["stacked_lstm", 8] > 3 * counts["stacked_lstm", 2]


@pytest.mark.parametrize(
    ("experiment", "sizes"),
    [("addition_paper", {"digits": 15}), ("memorization_paper", {"length": 20, "vocab": 66})],
)
def test_paper_presets_use_the_paper_task_size_and_sweep_all_three_models(
    experiment, sizes, tmp_path
):
    cfg = compose_train([f"experiment={experiment}"], tmp_path)
    for key, value in sizes.items():
        assert cfg.task.datamodule[key] == value
    # Without -m the preset is the tied 2-LSTM alone; with -m the sweep covers the table.
    assert cfg.model.name == "grid2d" and cfg.model.net.tied
    params = cfg.hydra.sweeper.params
    assert params["model"].split(",") == ["stacked_lstm", "grid2d_untied", "grid2d"]


def test_enwik8_paper_preset_compares_at_an_equal_parameter_budget(tmp_path):
    from tests.conftest import task_overrides

    data = [o for o in task_overrides("enwik8", tmp_path) if o.startswith("task.datamodule.")]
    counts = {}
    for model in ("grid2d", "stacked_lstm"):
        cfg = compose_train(["experiment=enwik8_paper", f"model={model}"], tmp_path)
        assert cfg.task.name == "enwik8" and cfg.task.datamodule.split == [0.9, 0.05, 0.05]
        counts[model] = built_parameters(
            ["experiment=enwik8_paper", f"model={model}", *data], tmp_path
        )
    # About the 16.8M parameters reported for the paper's tied 2-LSTM [secondary].
    assert all(abs(count - 16.8e6) < 0.01 * 16.8e6 for count in counts.values()), counts
    assert max(counts.values()) / min(counts.values()) < 1.01, counts


def test_coreylynch_grid_shares_only_the_depth_lstm(tmp_path):
    cfg = compose_train(["experiment=enwik8_coreylynch"], tmp_path)
    assert cfg.model.name == "grid2d_coreylynch"
    assert cfg.model.net.tie_depth_lstm and not cfg.model.net.tied
    assert cfg.model.net.hidden_size == 1000 and cfg.model.net.num_layers == 6
    assert cfg.hydra.sweeper.params["model.net.num_layers"] == "3,6"


@pytest.mark.parametrize("experiment", ["mnist_cpu", "mnist_paper"])
def test_mnist_presets_build_every_model_of_their_table(experiment, tmp_path):
    from gridlstm.tasks import ImageClassificationModule

    cfg = compose_train([f"experiment={experiment}"], tmp_path)
    models = cfg.hydra.sweeper.params["model"].split(",")
    assert models[1:] == ["mdlstm", "row_lstm", "cnn"]
    assert models[0] == {"mnist_cpu": "grid3d", "mnist_paper": "grid3d_paper"}[experiment]
    for model in models:
        cfg = compose_train([f"experiment={experiment}", f"model={model}"], tmp_path)
        assert cfg.task.name == "mnist" and cfg.model.input_kind == "image"
        net = dict(cfg.model.net)
        options = {k: v for k, v in cfg.task.module.items() if k != "_target_"}
        module = ImageClassificationModule(net, 28, 1, 10, dict(cfg.optim.optimizer), **options)
        assert module.num_parameters > 0


class TranslationData:
    """What a translation data module gives its task module (`module_kwargs`), without a
    corpus: vocabulary sizes, languages and (tiny, untrained) tokenizers."""

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int) -> None:
        from tokenizers import Tokenizer, models

        tokenizer = Tokenizer(models.BPE()).to_str()
        self.kwargs = {
            "src_vocab_size": src_vocab_size,
            "tgt_vocab_size": tgt_vocab_size,
            "src_tokenizer": tokenizer,
            "tgt_tokenizer": tokenizer,
            "src_lang": "zh",
            "tgt_lang": "en",
        }

    def module_kwargs(self) -> dict:
        return self.kwargs


@pytest.mark.parametrize("experiment", ["translation_cpu", "translation_paper"])
def test_translation_presets_give_every_model_the_same_parameter_budget(experiment, tmp_path):
    """Through the one solver every task uses (`gridlstm.run.build.solve_width`)."""
    from gridlstm.run.build import solve_width

    counts = {}
    for model in ("reencoder", "lstm_attention", "transformer"):
        cfg = compose_train([f"experiment={experiment}", f"model={model}"], tmp_path)
        data = TranslationData(
            cfg.task.datamodule.src_vocab_size, cfg.task.datamodule.tgt_vocab_size
        )
        _, counts[model] = solve_width(cfg, data)
    budget = cfg.param_budget
    assert all(abs(c - budget) / budget < 0.02 for c in counts.values()), counts
    assert cfg.hydra.sweeper.params["model"].split(",") == list(counts)


# Every model a comparison preset's task accepts (and the tying variants), at a budget that
# each can meet; (experiment, budget, extra overrides per variant).
BUDGETS = [
    ("addition_cpu", 200_000),
    ("memorization_cpu", 200_000),
    ("parity_cpu", 50_000),
    ("text_cpu", 200_000),
    ("mnist_cpu", 800_000),  # the 3-LSTM has ~100 d^2 weights: 2% steps need d >= ~100
]
VARIANTS = {
    "sequence": [
        ["model.net.share_dims=true"],
        ["model.net.tied=false"],
        ["model.net.num_layers=8"],
    ],
}


def budget_cases() -> list[tuple[str, int, str, list[str]]]:
    from gridlstm.run.config import models_for
    from tests.test_configs import CONF

    cases = []
    for experiment, budget in BUDGETS:
        kind = compose_train([f"experiment={experiment}"]).task.input_kind
        for model in models_for(kind, CONF):
            cases.append((experiment, budget, model, []))
        if kind == "sequence":
            cases += [(experiment, budget, "grid2d", extra) for extra in VARIANTS["sequence"]]
    return cases


@pytest.mark.parametrize(("experiment", "budget", "model", "extra"), budget_cases())
def test_param_budget_gives_every_model_the_budget_within_two_percent(
    tmp_path, experiment, budget, model, extra
):
    from gridlstm.run.build import build_module
    from tests.conftest import task_overrides

    task = compose_train([f"experiment={experiment}"]).task.name
    data = []  # small generated files for the tasks that read data (sizes do not matter)
    if task in ("text", "mnist"):
        data = [o for o in task_overrides(task, tmp_path) if o.startswith("task.")]
        data += ["task.datamodule.train_size=30"] if task == "mnist" else []
    cfg = compose_train(
        [f"experiment={experiment}", f"model={model}", *extra, *data, f"param_budget={budget}"],
        tmp_path,
    )
    datamodule = instantiate(cfg.task.datamodule)
    module = build_module(cfg, datamodule)
    assert abs(module.num_parameters - budget) <= 0.02 * budget, (module.num_parameters, budget)
    assert module.extra_metrics["hidden"] == module.hparams.net["hidden_size"]


EXPERIMENTS = Path(__file__).parents[1] / "conf" / "experiment"
# Stage-1 pilots (one seed, a grid of settings) find where a study can show its claim; the
# studies themselves sweep seeds.
PILOTS = sorted(p.stem for p in EXPERIMENTS.glob("claims_*_pilot.yaml"))
CLAIMS = sorted(p.stem for p in EXPERIMENTS.glob("claims_*") if p.stem not in PILOTS)


# study: (the claim's task, its Grid LSTM, the baselines it is compared with, the axis swept)
STUDIES = {
    "claims_addition_depth": ("addition", "grid2d", {"stacked_lstm"}, "model.net.num_layers"),
    "claims_coreylynch": ("text", "grid2d_coreylynch", {"stacked_lstm"}, "model.net.num_layers"),
    "claims_memorization_depth": (
        "memorization",
        "grid2d",
        {"stacked_lstm"},
        "model.net.num_layers",
    ),
    "claims_mnist": ("mnist", "grid3d", {"mdlstm", "row_lstm", "cnn"}, None),
    "claims_parity": ("parity", "grid1d", {"tanh_net", "relu_net"}, "task.datamodule.bits"),
}


# Second-round studies: a family's configuration comes on the command line; they sweep seeds.
ROUND2 = {"claims_parity_frontier": "parity"}
# Third-round studies: their grids (and, in later stages, seeds) live in their study.yaml's
# stages, which later runs of the study queue resume.
QUEUED = {"claims_parity_sizes": "parity", "claims_addition_lengths": "addition"}


def queued_study(experiment: str) -> dict:
    from gridlstm.analysis.studies import load_studies

    claims = EXPERIMENTS.parents[1] / "docs" / "claims"
    studies = {}
    for path in sorted(claims.glob("*/study.yaml")):
        studies |= load_studies(path)
    # the search stage: later stages run its chosen configurations as `cases`
    (study,) = [
        s
        for s in studies.values()
        if f"experiment={experiment}" in s["overrides"] and not {"cases", "rule"} & set(s)
    ]
    return study


def test_there_is_a_claims_study_for_each_of_the_five_claims():
    assert set(CLAIMS) == set(STUDIES) | set(ROUND2) | set(QUEUED)
    assert PILOTS == ["claims_addition_pilot", "claims_parity_pilot"]


@pytest.mark.parametrize("pilot", PILOTS)
def test_each_pilot_is_one_seed_over_learning_rates_and_stops_once_solved(pilot, tmp_path):
    cfg = compose_train([f"experiment={pilot}"], tmp_path)
    params = cfg.hydra.sweeper.params
    assert "seed" not in params
    assert len(str(params["optim.optimizer.lr"]).split(",")) >= 2
    assert STUDIES[pilot.replace("_pilot", "_depth" if "addition" in pilot else "")][0] == (
        cfg.task.name
    )


@pytest.mark.parametrize("experiment", sorted(STUDIES))
def test_each_claims_study_compares_its_grid_lstm_with_the_baselines_on_the_claims_task(
    experiment, tmp_path
):
    task, grid, baselines, axis = STUDIES[experiment]
    cfg = compose_train([f"experiment={experiment}"], tmp_path)
    params = cfg.hydra.sweeper.params
    assert cfg.task.name == task
    assert set(str(params["model"]).split(",")) == {grid, *baselines}
    assert len(str(params["seed"]).split(",")) >= 3
    if axis is not None:
        assert len(str(params[axis]).split(",")) >= 2


@pytest.mark.parametrize("experiment", CLAIMS + PILOTS)
def test_every_claims_study_sweeps_at_least_three_seeds_and_runs_fast_dev_run(experiment, tmp_path):
    """Each study as its sweep would start it (the deepest swept network), for one batch."""
    from gridlstm.run.training import train
    from tests.conftest import task_overrides

    params = compose_train([f"experiment={experiment}"], tmp_path).hydra.sweeper.params
    if experiment in QUEUED:  # its grid is the queue's: one seed in the search stage
        params = {k: ",".join(map(str, v)) for k, v in queued_study(experiment)["grid"].items()}
        assert compose_train([f"experiment={experiment}"], tmp_path).task.name == QUEUED[experiment]
    assert experiment in PILOTS or experiment in QUEUED or len(str(params["seed"]).split(",")) >= 3
    overrides = [f"experiment={experiment}", "debug=fast_dev_run", "hardware.threads=1"]
    if "model.net.num_layers" in params:
        deepest = max(int(n) for n in str(params["model.net.num_layers"]).split(","))
        overrides.append(f"model.net.num_layers={deepest}")
    task = compose_train(overrides, tmp_path).task.name
    if task in ("text", "mnist"):  # small generated files in the real formats
        data = [o for o in task_overrides(task, tmp_path) if o.startswith("task.")]
        overrides += data + (["task.datamodule.train_size=30"] if task == "mnist" else [])
    cfg = compose_train(overrides, tmp_path)
    metrics = train(cfg)
    assert metrics["status"] == "completed" and metrics["params"] > 0
    if cfg.get("param_budget"):
        assert abs(metrics["params"] - cfg.param_budget) <= 0.02 * cfg.param_budget


def test_the_cpu_coreylynch_study_uses_the_settings_of_the_enwik8_preset(tmp_path):
    """coreylynch/grid-lstm's README settings, in both presets (only width, data, steps differ)."""
    full = compose_train(["experiment=enwik8_coreylynch"], tmp_path)
    cpu = compose_train(["experiment=claims_coreylynch"], tmp_path)
    for cfg in (full, cpu):
        assert cfg.optim.optimizer._target_ == "torch.optim.RMSprop"
        assert cfg.optim.optimizer.lr == 0.001
        assert (cfg.task.datamodule.bptt, cfg.task.datamodule.batch_size) == (50, 50)
        assert list(cfg.task.datamodule.split) == [0.95, 0.04, 0.01]
        assert cfg.model.net.dropout == 0.25 and cfg.task.module.output_dropout == 0.25
        assert cfg.model.name == "grid2d_coreylynch" and cfg.model.net.tie_depth_lstm
    for key in ("model", "model.net.num_layers", "model.net.dropout"):
        assert full.hydra.sweeper.params[key] == cpu.hydra.sweeper.params[key]


# The studies and CPU tables whose committed results ran with depth priority (the default of
# model=grid2d until 2026-11-25) keep it, so each page's command reproduces its numbers.
DEPTH_PRIORITY_PRESETS = [
    "claims_addition_depth",
    "claims_addition_lengths",
    "claims_addition_pilot",
    "claims_memorization_depth",
    "addition_cpu",
    "memorization_cpu",
    "text_cpu",
    "deep_tied",
]


@pytest.mark.parametrize("preset", DEPTH_PRIORITY_PRESETS)
def test_presets_of_committed_results_keep_depth_priority(preset, tmp_path):
    overrides = [f"experiment={preset}", "model=grid2d", "task.path=x.txt"]
    if preset != "text_cpu":
        overrides = overrides[:2]
    assert compose_train(overrides, tmp_path).model.net.priority == "depth"
    untied = compose_train([*overrides, "model=grid2d_untied"], tmp_path)
    assert untied.model.net.priority == "depth"


@pytest.mark.parametrize(
    ("overrides", "priority"),
    [
        ([], "none"),
        (["model=grid2d_untied"], "none"),
        (["model=grid2d_coreylynch"], "depth"),
        (["experiment=addition_paper"], "none"),
        (["grid2d_priority=time"], "time"),
        (["experiment=addition_cpu", "model.net.priority=none"], "none"),
    ],
)
def test_grid2d_defaults_to_priority_none(overrides, priority, tmp_path):
    """model=grid2d's default since 2026-11-25 (docs/claims/deep_tied); a command-line
    priority wins over a preset's grid2d_priority."""
    assert compose_train(overrides, tmp_path).model.net.priority == priority


def test_the_width_solver_keeps_a_presets_priority(tmp_path):
    """The parameter-budget solver builds candidate nets from model.net alone: a value the
    net reads from the root (grid2d_priority) must keep the preset's, not fall back."""
    from gridlstm.run.build import net_at

    cfg = compose_train(["experiment=addition_cpu", "model=grid2d"], tmp_path)
    net = net_at(cfg, 40)
    assert net["priority"] == "depth" and net["hidden_size"] == 40 and net["input_size"] == 40
    assert net_at(compose_train([], tmp_path), 40)["priority"] == "none"
