"""The opt-in pickle → safetensors conversion, through the core function and `graft convert`."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from safetensors.torch import load_file

from app.cli import main
from core.errors import Cancelled, ExportError, SourceError
from core.progress import CancelToken
from core.sources import open_source
from core.sources.convert import convert_pickle


class NotATensor:
    """Pickled instances of this class must never be rebuilt by the converter."""

    def __init__(self) -> None:
        self.value = 1


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tied_state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    embed = torch.randn(40, 8, generator=g)
    return {
        "embed.weight": embed,
        "lm_head.weight": embed,  # tied: the same storage under two names
        "proj.weight": torch.randn(8, 8, generator=g).to(torch.bfloat16),
        "proj.bias": torch.randn(8, generator=g).to(torch.float16),
        "half_view": embed[:, :4],  # a non-contiguous view into the shared storage
        "steps": torch.tensor(7),
    }


def test_tied_state_dict_converts_and_equals_the_original(tmp_path):
    state = _tied_state()
    src = tmp_path / "ckpt.pt"
    torch.save(state, src)
    before = _sha(src)
    fractions = []

    out = convert_pickle(src, progress=lambda f, m: fractions.append(f))

    assert out == tmp_path / "ckpt.safetensors"
    assert _sha(src) == before
    assert fractions[-1] == 1.0
    source = open_source(out)
    assert source.metadata["format"] == "pt" and "graft.version" in source.metadata
    assert set(source.tensors) == set(state)
    for name, tensor in state.items():
        torch.testing.assert_close(source.read(name), tensor, rtol=0, atol=0)
    # The reference reader agrees, and the names are independent copies.
    loaded = load_file(str(out))
    assert torch.equal(loaded["lm_head.weight"], state["embed.weight"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt", "ckpt.safetensors"]  # no partial file


@pytest.mark.parametrize("key", ["state_dict", "model"])
def test_nested_state_dict(tmp_path, key):
    state = _tied_state()
    src = tmp_path / "trainer.pth"
    torch.save({key: state, "epoch": 3, "optimizer": {"lr": 0.1}}, src)
    out = convert_pickle(src, tmp_path / "out" / "weights.safetensors")
    assert set(open_source(out).tensors) == set(state)


def test_arbitrary_objects_are_refused_not_unpickled(tmp_path):
    src = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(2), "obj": NotATensor()}, src)
    with pytest.raises(SourceError, match="weights_only=True"):
        convert_pickle(src)
    assert not (tmp_path / "evil.safetensors").exists()


def test_not_a_checkpoint_and_missing_file(tmp_path):
    src = tmp_path / "junk.bin"
    src.write_bytes(b"this is not a torch file")
    with pytest.raises(SourceError, match="junk.bin"):
        convert_pickle(src)
    with pytest.raises(SourceError, match="does not exist"):
        convert_pickle(tmp_path / "missing.bin")
    torch.save({"step": 3}, tmp_path / "no_tensors.pt")
    with pytest.raises(SourceError, match="no tensors"):
        convert_pickle(tmp_path / "no_tensors.pt")


def test_existing_output_needs_force(tmp_path):
    src = tmp_path / "a.pt"
    torch.save(_tied_state(), src)
    out = convert_pickle(src)
    with pytest.raises(ExportError, match="already exists"):
        convert_pickle(src)
    assert convert_pickle(src, force=True) == out


def test_cancel_leaves_no_file(tmp_path):
    src = tmp_path / "a.pt"
    torch.save(_tied_state(), src)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        convert_pickle(src, cancel=token)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt"]


def test_hf_folder_with_pytorch_model_bin_converts_and_loads_in_transformers(tmp_path, capsys):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
    )
    model = BertForMaskedLM(config).eval()
    folder = tmp_path / "legacy"
    folder.mkdir()
    config.save_pretrained(folder)
    state = model.state_dict()
    assert (
        state["cls.predictions.decoder.weight"].data_ptr() == state["bert.embeddings.word_embeddings.weight"].data_ptr()
    )
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(SourceError, match="graft convert"):
        open_source(folder)

    assert main(["convert", str(folder / "pytorch_model.bin")]) == 0
    assert "model.safetensors" in capsys.readouterr().out
    source = open_source(folder)
    assert source.files == [(folder / "model.safetensors").resolve()]
    assert json.loads((folder / "config.json").read_text())["model_type"] == "bert"

    reloaded = BertForMaskedLM.from_pretrained(folder).eval()
    ids = torch.randint(0, 50, (2, 7), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, model(ids).logits)


def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("graft: error:") and "\n" not in err
