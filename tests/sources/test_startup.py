"""Start-up (issue 17): opening a checkpoint's headers, and planning a transfer whose index draws nothing at random,
need neither torch nor transformers; a closed pipe is quiet."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from core.architectures.class_defaults import DEFAULTS, KEYS, class_default, generate
from core.architectures.spec import FAMILIES


def test_inspect_imports_neither_torch_nor_transformers(tmp_path):
    from tests.tiny_models import build_tiny

    folder = tmp_path / "gemma"
    build_tiny("gemma", folder)
    config = json.loads((folder / "config.json").read_text())
    config.pop("tie_word_embeddings", None)  # the class default is asked for (Gemma ties)
    (folder / "config.json").write_text(json.dumps(config))
    script = (
        "import sys\nfrom app.cli import main\n"
        f"assert main(['inspect', {str(folder)!r}]) == 0\n"
        f"assert main(['inspect', {str(folder)!r}, '--json', '--headers-only']) == 0\n"
        "loaded = [m for m in ('torch', 'transformers', 'safetensors') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "family gemma" in done.stdout


def test_the_class_default_table_is_what_transformers_says():
    known = generate(set(DEFAULTS))
    assert known == {mt: row for mt, row in DEFAULTS.items() if mt in known}
    assert all(set(row) == set(KEYS) for row in DEFAULTS.values())
    missing = {mt for name in FAMILIES.names() for mt in FAMILIES.get(name).model_types} - set(DEFAULTS)
    assert not set(generate(missing)), f"add {missing} to DEFAULTS: python -m core.architectures.class_defaults"
    assert class_default("gemma", "tie_word_embeddings", False) is True
    assert class_default("llama", "tie_word_embeddings", True) is False
    assert class_default("no-such-type", "tie_word_embeddings", "fallback") == "fallback"


def test_a_reader_that_left_early_is_quiet():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout buffered, as for a user
    for args in (["plan", "demo", "--layers", "2"], ["inspect", "demo", "--headers-only"], ["strategies"]):
        read, write = os.pipe()
        os.close(read)  # `graft … | head` after head has exited
        try:
            done = subprocess.run(
                [sys.executable, "-m", "app.cli", *args], stdout=write, stderr=subprocess.PIPE, text=True, env=env
            )
        finally:
            os.close(write)
        assert (done.returncode, done.stderr) == (141, ""), (args, done.returncode, done.stderr)


def test_help_imports_neither_torch_nor_transformers():
    script = (
        "import sys\nfrom app.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
        "loaded = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "inspect" in done.stdout and "transfer" in done.stdout


def test_plan_and_dry_run_import_neither_torch_nor_transformers(tiny_bert_folder, tmp_path):
    recipe = tmp_path / "recipe.json"
    calls = [
        ["plan", "demo", "--layers", "2"],
        ["plan", str(tiny_bert_folder), "--layers", "1", "--hidden", "16", "--json"],
        ["plan", "demo", "--layers", "3", "--ffn", "1000", "--index", "cyclic"],
        ["plan", "demo", "--layers", "2", "--ffn", "768", "--index", "uniform"],  # 1536/768: no linspace
        ["transfer", "demo", "--layers", "2", "--hidden", "128", "--heads", "4", "--dry-run"],
        ["transfer", str(tiny_bert_folder), "--layers", "1", "--dry-run", "--save-recipe", str(recipe)],
    ]
    script = (
        "import sys\nfrom app.cli import main\n"
        f"for argv in {calls!r}:\n    assert main(argv) == 0, argv\n"
        "loaded = [m for m in ('torch', 'transformers', 'safetensors', 'numpy') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("family: bert") == 5 and '"family": "bert"' in done.stdout
    assert json.loads(recipe.read_text())["target"]["layers"] == 1


def test_a_draw_without_randomness_gets_no_generator():
    """The index strategies planned without a torch.Generator draw what they draw with one; every other
    strategy uses its generator (torch refuses the stand-in), so it must keep getting one."""
    from core.plan.maps import DRAW_NOTHING_AT_RANDOM, NO_GENERATOR
    from core.strategies import base

    for name in base.names("index"):
        strategy = base.get(name)
        params = base.make_params(name)
        for n, m in ((12, 5), (1536, 768), (7, 7), (5, 9)):
            if m > n and not strategy.can_grow:
                continue
            scores = [float((i * 7) % 5) for i in range(n)] if strategy.needs_scores else None
            drawn = strategy.draw(params, n, m, gen=base.generator(0, "dim", name), scores=scores)
            if name in DRAW_NOTHING_AT_RANDOM:
                assert strategy.draw(params, n, m, gen=NO_GENERATOR, scores=scores) == drawn, (name, n, m)
            else:
                try:
                    strategy.draw(params, n, m, gen=NO_GENERATOR, scores=scores)
                except TypeError:
                    continue
                raise AssertionError(f"{name} drew without its generator: add it to DRAW_NOTHING_AT_RANDOM")
