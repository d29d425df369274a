"""Exports are plain transformers checkpoints: a source's remote-code hooks are dropped, and the card says so.

A source's ``auto_map`` makes ``transformers`` import modelling or tokenizer code from the
source's repository; the keys used to be copied into the export's ``config.json`` and
``tokenizer_config.json``.
"""

from __future__ import annotations

import json
import shutil

from app.cli import main

AUTO_MAP = {"AutoModel": "modeling_evil.EvilModel", "AutoTokenizer": ["tokenization_evil.EvilTokenizer", None]}


def test_auto_map_and_trust_remote_code_are_dropped(tiny_bert_folder, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(tiny_bert_folder, src)
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, "auto_map": AUTO_MAP, "trust_remote_code": True}))
    tokenizer = json.loads((src / "tokenizer_config.json").read_text())
    (src / "tokenizer_config.json").write_text(json.dumps({**tokenizer, "auto_map": AUTO_MAP}))
    (src / "modeling_evil.py").write_text("raise SystemExit('remote code ran')\n")

    out = tmp_path / "out"
    assert main(["transfer", str(src), "--layers", "1", "--out", str(out)]) == 0
    exported = json.loads((out / "config.json").read_text())
    assert "auto_map" not in exported and "trust_remote_code" not in exported
    exported_tokenizer = json.loads((out / "tokenizer_config.json").read_text())
    assert "auto_map" not in exported_tokenizer
    assert exported_tokenizer == tokenizer  # nothing else changed
    assert not (out / "modeling_evil.py").exists()
    card = (out / "README.md").read_text()
    assert (
        "`auto_map, trust_remote_code` from `config.json`" in card and "`auto_map` from `tokenizer_config.json`" in card
    )

    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(out)  # no trust_remote_code: transformers' own BertModel
    assert type(model).__name__ == "BertModel" and model.config.num_hidden_layers == 1
    assert type(AutoTokenizer.from_pretrained(out)).__name__.startswith("Bert")


def test_a_source_without_remote_code_is_copied_byte_for_byte(tiny_bert_folder, tmp_path):
    out = tmp_path / "out"
    assert main(["transfer", str(tiny_bert_folder), "--layers", "1", "--out", str(out)]) == 0
    assert (out / "tokenizer_config.json").read_bytes() == (tiny_bert_folder / "tokenizer_config.json").read_bytes()
    assert "removed" not in (out / "README.md").read_text()
