"""The one argument style every command shares (`gridlstm.run.arguments`)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gridlstm.run import arguments
from gridlstm.run.arguments import option
from gridlstm.run.errors import ConfigError


@dataclass
class Options:
    ckpt_path: str = option("", "a checkpoint")
    length: int = option(500, "characters")
    top_k: int | None = option(None, "k or null")
    greedy: bool = option(False, "no sampling")
    prime: str = option("\n", "text")


def test_values_are_typed_by_the_options_and_kept_as_text_where_text():
    cfg, extra = arguments.parse(
        ["ckpt_path=a.ckpt", "length=7", "top_k=null", "greedy=true", "prime=true"], Options
    )
    assert (cfg.ckpt_path, cfg.length, cfg.top_k, cfg.greedy, cfg.prime) == (
        "a.ckpt",
        7,
        None,
        True,
        "true",
    )
    assert extra == []


def test_old_names_synonyms_and_extra_overrides(capsys):
    cfg, extra = arguments.parse(
        ["ckpt=a.ckpt", "out=x", "task.datamodule.digits=3"],
        Options,
        aliases={"ckpt": "ckpt_path"},
        synonyms={"out": "prime"},
        extra=lambda key: key.startswith("task."),
    )
    assert cfg.ckpt_path == "a.ckpt" and cfg.prime == "x"
    assert extra == ["task.datamodule.digits=3"]
    note = "note: ckpt= is now ckpt_path= (the old name still works)"
    assert capsys.readouterr().err.strip() == note


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--length", "5"],
            "'--length': arguments are key=value, as train.py's overrides; write length=VALUE",
        ),
        (["--colour"], "valid: ckpt_path=, length=, top_k=, greedy=, prime="),
        (["length"], "argument 'length' is not key=value"),
        (["=5"], "argument '=5' is not key=value"),
        (["colour=red"], "unknown argument 'colour=red'; valid: ckpt_path="),
        (["lenght=5"], "unknown argument 'lenght=5'; did you mean length=? valid: ckpt_path="),
        (["top-k=1"], "unknown argument 'top-k=1'; did you mean top_k=?"),
        (["length=many"], "length: Value 'many' of type 'str' could not be converted to Integer"),
        (["greedy=perhaps"], "greedy: "),
    ],
)
def test_bad_arguments_are_one_line_naming_the_valid_keys(argv, message):
    with pytest.raises(ConfigError) as error:
        arguments.parse(argv, Options)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_help_lists_every_option_with_its_default(capsys):
    doc = "What it does.\n\n    python -m gridlstm.x ckpt_path=...\n\nMore detail."
    assert arguments.run_command(["--help"], doc, Options, lambda argv: 1 / 0) is None
    out = capsys.readouterr().out
    assert out.startswith("What it does.\n\n    python -m gridlstm.x") and "More detail" not in out
    assert "  length=            characters [500]" in out
    assert "greedy=            no sampling [false]" in out and "['\\n']" in out


def test_a_config_error_ends_the_command_with_exit_code_2(capsys):
    def body(argv):
        raise ConfigError("bad thing")

    with pytest.raises(SystemExit) as stop:
        arguments.run_command([], "doc", Options, body)
    assert stop.value.code == 2 and capsys.readouterr().err == "error: bad thing\n"


def test_evaluate_takes_a_misspelt_option_for_a_typo_not_for_a_config_override():
    """evaluate passes config overrides through (task.*, hardware=gpu); a bare key that is
    neither an option nor a config group is refused with the closest option."""
    from gridlstm import evaluate

    with pytest.raises(
        ConfigError, match=r"unknown argument 'ckpt_pth=x'; did you mean ckpt_path="
    ):
        evaluate.parse(["ckpt_pth=x"])
    cfg, overrides = evaluate.parse(["ckpt_path=x", "hardware=cpu", "hardware.threads=1"])
    assert cfg.ckpt_path == "x" and overrides == ["hardware=cpu", "hardware.threads=1"]
