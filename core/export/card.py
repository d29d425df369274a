"""The model card (``README.md``) of an export: where the weights came from and how to load them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core import __version__


def default_model_card(facts: Mapping[str, Any]) -> str:
    """A short markdown model card from a dict of facts.

    Args:
        facts: any of ``source`` (path or repo id), ``revision``, ``family``, ``target``
            (a dict of sizes, e.g. ``{"layers": 4, "hidden": 256}``), ``strategy``,
            ``parameters`` (a dict), ``seed``, ``dtype``, ``graft_version`` (defaults to this
            Graft's version), ``library`` (the ``library_name``, default ``transformers``), ``loader``
            (``(module, call)`` that loads the folder, default ``("transformers", "AutoModel.from_pretrained")``:
            the family spec's) and ``removed_remote_code`` (file name → keys removed, e.g.
            ``{"config.json": ["auto_map"]}``).

    Returns:
        Markdown with Hugging Face front matter.
    """
    source = str(facts.get("source", "unknown"))
    revision = facts.get("revision")
    module, call = facts.get("loader") or ("transformers", "AutoModel.from_pretrained")
    lines = [
        "---",
        "library_name: " + str(facts.get("library") or "transformers"),
        "tags:",
        "- graft",
    ]
    if "/" in source and not Path(source).exists() and not source.startswith((".", "/", "~")):
        lines.append(f"base_model: {source}")  # looks like a hub repo id
    lines += ["---", "", "# Model initialised with Graft", ""]
    lines.append(
        "The weights of this model were not trained from scratch: Graft built them from a larger or "
        "different pretrained model by transferring its weights onto a new size."
    )
    lines.append("")
    src = f"`{source}`" + (f" (revision `{revision}`)" if revision else "")
    rows = [("Source", src)]
    if facts.get("family"):
        rows.append(("Architecture", f"`{facts['family']}`"))
    target = facts.get("target") or {}
    if target:
        rows.append(("Target sizes", ", ".join(f"{k} {v}" for k, v in target.items())))
    if facts.get("strategy"):
        rows.append(("Strategy", f"`{facts['strategy']}`"))
    params = facts.get("parameters") or {}
    if params:
        rows.append(("Parameters", ", ".join(f"{k}={v}" for k, v in params.items())))
    if facts.get("seed") is not None:
        rows.append(("Seed", str(facts["seed"])))
    if facts.get("dtype"):
        rows.append(("Dtype", str(facts["dtype"])))
    rows.append(("Graft version", str(facts.get("graft_version", __version__))))
    lines += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    lines += ["", "The full recipe is in `graft_recipe.json`."]
    removed = facts.get("removed_remote_code") or {}
    if removed:
        what = "; ".join(f"`{', '.join(keys)}` from `{name}`" for name, keys in removed.items())
        lines += [
            "",
            f"Graft removed {what}: the source pointed `transformers` at custom code from its repository. "
            "This export holds weights for transformers' own classes, so it loads without "
            "`trust_remote_code` and runs no code from the source.",
        ]
    lines += ["", "## How to load", ""]
    lines += [
        "```python",
        f"from {module} import {call.split('.')[0]}",
        "",
        f'model = {call}("path/to/this/folder")',
        "```",
    ]
    lines += ["", "These are starting weights: fine-tune before use.", ""]
    return "\n".join(lines)
