"""Validation options of the wrong type or out of range are one sentence, before any training."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cli_expect import fails


def _recipe(tmp_path, validation: dict):
    path = tmp_path / "recipe.json"
    path.write_text(
        json.dumps(
            {
                "graft_recipe": 1,
                "source": "demo",
                "target": {"layers": 1, "hidden": 64, "heads": 2},
                "validation": {"steps": 1, **validation},
            }
        )
    )
    return path


@pytest.mark.parametrize(
    "validation, needle",
    [
        ({"steps": "x"}, "steps must be a whole number"),
        ({"lr": float("nan")}, "lr must be a finite number"),
        ({"bf16": 1}, "bf16 must be true or false"),
        ({"batch_size": True}, "batch_size must be a whole number"),
    ],
)
def test_bad_validation_options_are_refused(tmp_path, capsys, validation, needle):
    fails(capsys, ["validate", str(_recipe(tmp_path, validation))], None, needle)


def test_a_batch_larger_than_the_data_is_refused_before_training(tmp_path):
    # A real process: the tokenizer logs through transformers' own handler, bound to the real stderr.
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "validate", str(_recipe(tmp_path, {"batch_size": 1_000_000}))],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("graft: error: ")]
    assert len(errors) == 1 and "batch size 1000000 is larger than the" in errors[0], done.stderr
