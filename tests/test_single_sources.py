"""Each list the CLI, the GUI and the recipe share is defined once: these views must equal their source.

Target sizes come from ``TargetSizes``' fields, layer maps from ``core.plan.LAYER_MAPS``, dtypes from
``core.dtypes.TABLE``, auxiliary files from ``core.sources.base.AUX_FILES``.
"""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from core.dtypes import EXPORT_DTYPES, SOURCE_BYTES, TABLE, itemsize, torch_dtype
from core.errors import RecipeError
from core.plan import LAYER_MAPS, TargetSizes
from core.recipe import Recipe

SIZES = [f.name for f in fields(TargetSizes)]
HELP = {name: help_text for name, _, help_text in TargetSizes.size_fields()}


def _size_dests(parser: argparse.ArgumentParser) -> list[str]:
    groups = [g for g in parser._action_groups if g.title and g.title.startswith("target sizes")]
    assert len(groups) == 1
    return [a.dest for a in groups[0]._group_actions]


def _option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action:
    return next(a for a in parser._actions if flag in a.option_strings)


def test_the_cli_size_flags_are_the_target_sizes():
    from app.cli import COMMANDS
    from app.cli.recipe_args import add_recipe_args

    recipe_flags = argparse.ArgumentParser()
    add_recipe_args(recipe_flags)
    compare = argparse.ArgumentParser()
    COMMANDS.get("compare").arguments(compare)
    for parser in (recipe_flags, compare):
        assert _size_dests(parser) == SIZES
        assert _option(parser, "--kv-heads").help == HELP["kv_heads"]
    args = recipe_flags.parse_args(["demo", *[x for n in SIZES for x in (f"--{n.replace('_', '-')}", "3")]])
    assert TargetSizes(**{n: getattr(args, n) for n in SIZES}) == TargetSizes(*[3] * len(SIZES))


def test_the_cli_dtype_choices_are_the_export_dtypes():
    from app.cli.recipe_args import add_recipe_args

    parser = argparse.ArgumentParser()
    add_recipe_args(parser)
    assert tuple(_option(parser, "--dtype").choices) == EXPORT_DTYPES == ("float32", "bfloat16", "float16")


def test_the_recipe_accepts_exactly_the_export_dtypes():
    for dtype in EXPORT_DTYPES:
        assert Recipe.from_dict({"source": "demo", "dtype": dtype}).dtype == dtype
    for other in {d.torch_name for d in TABLE} - set(EXPORT_DTYPES):
        with pytest.raises(RecipeError, match="dtype must be one of float32, bfloat16, float16"):
            Recipe.from_dict({"source": "demo", "dtype": other})


def test_the_dtype_table_agrees_with_torch():
    import torch

    for d in TABLE:
        if not hasattr(torch, d.torch_name):  # an older torch without this float8
            continue
        assert torch_dtype(d.code) is torch_dtype(d.torch_name) is getattr(torch, d.torch_name)
        assert itemsize(d.code) == itemsize(d.torch_name) == getattr(torch, d.torch_name).itemsize, d
    assert "C64" not in SOURCE_BYTES and SOURCE_BYTES["BF16"] == 2 and itemsize("no such dtype", 4) == 4


def test_the_safetensors_writer_names_every_table_dtype():
    from core.safetensors_stream import DTYPE_NAMES

    assert sorted(DTYPE_NAMES.values()) == sorted(d.code for d in TABLE if hasattr(__import__("torch"), d.torch_name))


def test_the_target_panel_shows_the_target_sizes_layer_maps_and_export_dtypes(qtbot):
    from app.panels.target import TargetPanel

    panel = TargetPanel()
    qtbot.addWidget(panel)
    assert list(panel.size_spins) == SIZES
    labels = {n: label for n, label, _ in TargetSizes.size_fields()}
    from app.qt import QtWidgets

    forms = panel.findChildren(QtWidgets.QFormLayout)
    for name, spin in panel.size_spins.items():
        shown = [f.labelForField(spin).text() for f in forms if f.labelForField(spin) is not None]
        assert shown == [labels[name]] and spin.toolTip() == HELP[name]
    assert [panel.layers_combo.itemData(i) for i in range(panel.layers_combo.count())] == list(LAYER_MAPS)
    assert [panel.dtype_combo.itemData(i) for i in range(panel.dtype_combo.count())] == [None, *EXPORT_DTYPES]


def test_the_export_dialog_offers_the_export_dtypes(qtbot):
    from app.panels.export_dialog import ExportDialog

    dialog = ExportDialog("/tmp/x", "5GB", "bfloat16")
    qtbot.addWidget(dialog)
    combo = dialog.dtype_combo
    assert [combo.itemData(i) for i in range(combo.count())] == ["", *EXPORT_DTYPES]
    assert combo.currentData() == "bfloat16"


def test_the_hub_fetches_the_aux_files_an_export_copies(tmp_path):
    from core.sources.base import (
        AUX_FILE_PATTERNS,
        TOKENIZER_FILE_PATTERNS,
        aux_file_names,
        is_aux_file,
    )
    from core.sources.hub.repo import ALLOW_PATTERNS, select_files

    assert set(AUX_FILE_PATTERNS) <= set(ALLOW_PATTERNS) and set(TOKENIZER_FILE_PATTERNS) <= set(AUX_FILE_PATTERNS)
    names = [
        "model.safetensors",
        "config.json",
        "tokenizer_config.json",
        "vocab.txt",
        "spm.model",
        "README.md",
        "generation_config.json",
        "modules.json",
    ]
    for name in names:
        (tmp_path / name).write_text("{}")
    fetched = [n for n in select_files(names, lambda: None) if n not in ("model.safetensors", "config.json")]
    assert (
        sorted(aux_file_names(tmp_path))
        == sorted(fetched)
        == ["generation_config.json", "spm.model", "tokenizer_config.json", "vocab.txt"]
    )
    assert aux_file_names(tmp_path, TOKENIZER_FILE_PATTERNS) == ["vocab.txt", "spm.model"]
    assert not is_aux_file("README.md") and is_aux_file("vocab.json")
