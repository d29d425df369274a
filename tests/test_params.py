"""One parameter system: ``core.params`` describes, checks, and turns options into flags and forms."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

import pytest

from core.errors import StrategyError, TrainingError
from core.params import add_arguments, build, check, describe, from_args, param
from core.training import ValidationConfig


@dataclass(frozen=True)
class Options:
    count: int = param(3, help="how many", min=1, max=10)
    scale: float = param(0.5, help="a factor", min=0.0)
    mode: str = param("fast", help="how", choices=("fast", "exact"))
    loud: bool = param(False, help="say more")
    label: str | None = param(None, help="a name, or none")


@dataclass(frozen=True)
class Sized:
    sizes: tuple[int, ...] = param((1, 2), help="a list of sizes")


def _info(name: str):
    return next(i for i in describe(Options) if i.name == name)


def test_describe_resolves_types_and_metadata():
    infos = describe(Options)
    assert [i.name for i in infos] == [f.name for f in dataclasses.fields(Options)]
    assert [(i.type, i.type_name, i.optional) for i in infos] == [
        (int, "int", False),
        (float, "float", False),
        (str, "str", False),
        (bool, "bool", False),
        (str, "str", True),
    ]
    count = _info("count")
    assert (count.default, count.min, count.max, count.choices, count.help) == (3, 1, 10, None, "how many")
    assert _info("mode").choices == ("fast", "exact")
    (sizes,) = describe(Sized)
    assert (sizes.type, sizes.to_dict()["default"]) == (tuple, [1, 2])
    assert build(Sized, {"sizes": [3]}, owner="sized") == Sized(sizes=[3])  # JSON has lists, not tuples
    with pytest.raises(StrategyError, match="sized.sizes must be a list, not '12'"):
        build(Sized, {"sizes": "12"}, owner="sized")


@pytest.mark.parametrize(
    "values, needle",
    [
        ({"count": 1.5}, "opts.count must be a whole number, not 1.5"),
        ({"count": True}, "opts.count must be a whole number, not True"),
        ({"scale": True}, "opts.scale must be a number, not True"),
        ({"scale": float("nan")}, "opts.scale must be a finite number, not nan"),
        ({"scale": float("inf")}, "opts.scale must be a finite number, not inf"),
        ({"count": 0}, "opts.count must be ≥ 1, not 0"),
        ({"count": 11}, "opts.count must be ≤ 10, not 11"),
        ({"scale": -0.1}, "opts.scale must be ≥ 0.0, not -0.1"),
        ({"mode": "slow"}, "opts.mode 'slow' is unknown; use one of fast, exact"),
        ({"loud": 1}, "opts.loud must be true or false, not 1"),
        ({"label": 3}, "opts.label must be a string, not 3"),
        ({"count": None}, "opts.count must be a whole number, not None"),
        ({"colour": 1, "count": 2}, "opts has no parameter(s) colour; it takes: count, scale, mode, loud, label"),
    ],
)
def test_build_refuses_bad_values_in_one_sentence(values, needle):
    with pytest.raises(StrategyError) as caught:
        build(Options, values, owner="opts")
    assert str(caught.value) == needle


def test_build_accepts_json_values_and_keeps_defaults():
    opts = build(Options, {"scale": 2, "label": None}, owner="opts")
    assert opts == Options(scale=2)
    assert build(Options, None, owner="opts") == Options()
    with pytest.raises(TrainingError):  # the caller's error class
        build(Options, {"count": 0}, owner="opts", error=TrainingError)


def test_a_hostile_value_stays_one_short_line():
    nested: object = 1
    for _ in range(5000):
        nested = [nested]
    with pytest.raises(StrategyError) as caught:
        build(Options, {"mode": nested}, owner="opts")
    assert len(str(caught.value)) < 120


def test_validation_config_checks_itself_with_the_same_rules():
    with pytest.raises(TrainingError, match=r"^validation\.steps must be ≥ 1, not 0$"):
        ValidationConfig(steps=0)
    with pytest.raises(TrainingError, match="head_init 'tied' is unknown; use one of auto, random"):
        ValidationConfig(head_init="tied")
    with pytest.raises(TrainingError, match="validation.eval_fraction must be ≤ 0.9, not 0.95"):
        ValidationConfig(eval_fraction=0.95)
    check(ValidationConfig(dataset=None, lr=1), owner="validation", error=TrainingError)  # an int is a number


def _parser(cls, **kwargs) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_arguments(parser, cls, **kwargs)
    return parser


def test_flags_round_trip_through_the_dataclass():
    parser = _parser(Options, exclude=("label",))
    args = parser.parse_args(["--count", "4", "--scale", "1e-3", "--mode", "exact", "--loud"])
    assert from_args(Options, args) == build(
        Options, {"count": 4, "scale": 1e-3, "mode": "exact", "loud": True}, owner="opts"
    )
    assert from_args(Options, parser.parse_args(["--no-loud"]), Options(loud=True, count=9)) == Options(count=9)
    assert from_args(Options, parser.parse_args([])) == Options()  # a flag left out keeps the default
    assert "--label" not in parser.format_help()
    assert "how many (default 3)" in parser.format_help()


def test_flags_check_values_at_parse_time_with_the_same_sentence():
    parser = _parser(Options, only=("count", "scale", "mode"))
    for argv, needle in (
        (["--count", "0"], "must be ≥ 1, not 0"),
        (["--count", "x"], "must be a whole number"),
        (["--scale", "nan"], "must be a finite number"),
        (["--mode", "slow"], "invalid choice"),
    ):
        with pytest.raises(argparse.ArgumentError, match=needle):
            parser.parse_args(argv)


def test_a_prefix_names_the_flags_and_their_dest():
    parser = _parser(Options, only=("count", "loud"), prefix="index-")
    args = parser.parse_args(["--index-count", "2", "--no-index-loud"])
    assert (args.index_count, args.index_loud) == (2, False)
    assert from_args(Options, args, prefix="index_") == Options(count=2)


def test_validation_flags_keep_their_names():
    parser = _parser(ValidationConfig)
    flags = [s for a in parser._actions for s in a.option_strings if s not in ("-h", "--help")]
    assert flags == [
        "--steps",
        "--batch-size",
        "--seq-len",
        "--lr",
        "--warmup",
        "--schedule",
        "--min-lr-ratio",
        "--weight-decay",
        "--grad-clip",
        "--eval-every",
        "--eval-batches",
        "--device",
        "--bf16",
        "--no-bf16",
        "--seed",
        "--param-filter",
        "--dataset",
        "--mlm-probability",
        "--eval-fraction",
        "--head-init",
        "--teacher-weight",
        "--teacher-temperature",
    ]
    config = from_args(ValidationConfig, parser.parse_args(["--steps", "7", "--no-bf16", "--dataset", "digits"]))
    assert config == ValidationConfig(steps=7, bf16=False, dataset="digits")


def test_forms_read_the_same_description(qtbot):
    from app.panels.forms import DataclassForm
    from app.qt import QtWidgets

    form = DataclassForm(Options)
    qtbot.addWidget(form)
    kinds = {
        "count": QtWidgets.QSpinBox,
        "scale": QtWidgets.QDoubleSpinBox,
        "mode": QtWidgets.QComboBox,
        "loud": QtWidgets.QCheckBox,
        "label": QtWidgets.QLineEdit,
    }
    for info in describe(Options):
        editor = form.editor(info.name)
        assert isinstance(editor, kinds[info.name]) and editor.toolTip() == info.help
    count = form.editor("count")
    assert (count.minimum(), count.maximum(), count.value()) == (1, 10, 3)
    assert form.editor("scale").minimum() == 0.0
    assert [form.editor("mode").itemData(i) for i in range(2)] == ["fast", "exact"]
    assert form.editor("label").placeholderText() == "default"  # optional: empty means the default
    assert form.values() == {}
    count.setValue(5)
    form.editor("mode").setCurrentIndex(1)
    assert form.values() == {"count": 5, "mode": "exact"}
    assert build(Options, form.all_values(), owner="opts") == Options(count=5, mode="exact")
