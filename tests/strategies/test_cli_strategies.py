"""``graft strategies [NAME]``: every strategy with its summary and parameters, from the Params declarations."""

from __future__ import annotations

import json
import subprocess
import sys

from app.cli import main
from core.params import describe
from core.strategies import get, names


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_list_names_every_strategy_with_its_kind_and_parameters(capsys):
    code, out, _ = _run(capsys, ["strategies"])
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip() and not line.startswith("'")}
    assert set(rows) == set(names())
    for name in names():
        strategy = get(name)
        assert rows[name].split()[1] == strategy.kind and strategy.summary in rows[name]
        for info in describe(strategy.Params):
            assert info.name in rows[name]
    code, out, _ = _run(capsys, ["strategies", "--kind", "index"])
    listed = {line.split()[0] for line in out.splitlines()[2:] if line.strip() and not line.startswith("'")}
    assert code == 0 and listed == set(names("index"))


def test_one_strategy_shows_what_it_can_do_and_a_row_per_parameter(capsys):
    code, out, _ = _run(capsys, ["strategies", "mean_field"])
    assert code == 0
    assert out.startswith("mean_field (value strategy): " + get("mean_field").summary)
    assert "can grow: yes" in out and "default index: iid" in out and "fills roles: any" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith(("rescale ", "noise "))}
    assert "str" in rows["rescale"] and "auto | none | mean_field | variance" in rows["rescale"]
    assert "float" in rows["noise"] and "0.0 … 1.0" in rows["noise"] and "symmetry-breaking noise" in rows["noise"]
    code, out, _ = _run(capsys, ["strategies", "mimetic"])
    assert "fills roles: attn.q, attn.k" in out and "alpha_qk" in out
    code, out, _ = _run(capsys, ["strategies", "by_activation"])
    assert "needs scores: yes" in out and "≥ 1" in out


def test_json_holds_the_same_data(capsys):
    code, out, _ = _run(capsys, ["strategies", "--json"])
    listed = json.loads(out)
    assert code == 0 and sorted(s["name"] for s in listed) == names()
    code, out, _ = _run(capsys, ["strategies", "mean_field", "--json"])
    one = json.loads(out)
    assert one == next(s for s in listed if s["name"] == "mean_field")
    assert one["parameters"] == [p.to_dict() for p in describe(get("mean_field").Params)]
    noise = one["parameters"][1]
    assert (noise["name"], noise["type"], noise["min"], noise["max"], noise["default"]) == (
        "noise",
        "float",
        0.0,
        1.0,
        0.0,
    )
    assert (one["kind"], one["can_grow"], one["default_index"], one["roles"]) == ("value", True, "iid", None)


def test_an_unknown_name_is_one_sentence_naming_the_known_ones(capsys):
    code, out, err = _run(capsys, ["strategies", "mean-field"])
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1
    assert lines[0].startswith("graft: error: unknown strategy 'mean-field'; known: ") and "mean_field" in lines[0]
    code, _, err = _run(capsys, ["strategies", "uniform", "--kind", "value"])
    assert code == 2 and "uniform is an index strategy" in err


def test_listing_loads_neither_torch_nor_qt():
    script = (
        "import sys\nfrom app.cli import main\n"
        "assert main(['strategies']) == 0 and main(['strategies', 'templates', '--json']) == 0\n"
        "loaded = [m for m in ('torch', 'PySide6') if m in sys.modules]\nassert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
