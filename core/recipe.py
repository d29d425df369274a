"""The recipe: one JSON file that the GUI saves, the CLI takes, and every export carries.

It names the source, the target sizes, the strategies (index + value per role), the seed and
the export options; an export adds the source's identity (path or repo id + revision, a SHA-256
of each shard) and the Graft version, so the same recipe reproduces the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core import __version__
from core.errors import RecipeError
from core.plan import TargetSizes

FORMAT = 1
DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class Recipe:
    """Everything that decides a transfer's bytes."""

    source: str = "demo"
    revision: str | None = None
    target: dict = field(default_factory=dict)
    values: dict = field(default_factory=lambda: {"default": {"method": "select", "params": {}}})
    index: dict | None = None
    layers: str | list[int] = "first_n"
    seed: int = 0
    dtype: str | None = None
    device: str = "cpu"
    max_shard_size: str = "5GB"
    validation: dict = field(default_factory=dict)
    #: filled on export: identity of the source, shard hashes, fitted parameters.
    provenance: dict = field(default_factory=dict)

    @property
    def sizes(self) -> TargetSizes:
        return TargetSizes.from_dict(self.target)

    def with_strategy(self, method: str, params: dict | None = None) -> Recipe:
        """A copy whose default value strategy is ``method`` (role overrides dropped, index reset)."""
        data = self.to_dict()
        data["values"] = {"default": {"method": method, "params": dict(params or {})}}
        data["index"] = None
        return Recipe.from_dict(data)

    # -- (de)serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict:
        data = asdict(self)
        return {"graft_recipe": FORMAT, "graft_version": __version__, **data}

    @classmethod
    def from_dict(cls, data: dict) -> Recipe:
        if not isinstance(data, dict):
            raise RecipeError("a recipe must be a JSON object")
        data = dict(data)
        version = data.pop("graft_recipe", FORMAT)
        data.pop("graft_version", None)
        if version != FORMAT:
            raise RecipeError(f"this recipe has format {version}, but this Graft reads format {FORMAT}; upgrade Graft")
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise RecipeError(f"unknown recipe field(s) {', '.join(sorted(unknown))}; expected {', '.join(sorted(known))}")
        recipe = cls(**data)
        recipe.validate()
        return recipe

    def validate(self) -> None:
        TargetSizes.from_dict(self.target)
        if self.dtype is not None and self.dtype not in DTYPES:
            raise RecipeError(f"dtype must be one of {', '.join(DTYPES)} (or absent to keep the source's), not {self.dtype!r}")
        if not isinstance(self.values, dict) or "default" not in self.values:
            raise RecipeError("the recipe's 'values' must map roles to strategies and include a 'default'")
        for role, choice in self.values.items():
            if not isinstance(choice, dict) or "method" not in choice:
                raise RecipeError(f"values[{role!r}] must be an object with a 'method'")
        if not isinstance(self.seed, int):
            raise RecipeError(f"seed must be an integer, not {self.seed!r}")

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        path = Path(path)
        if path.is_dir():
            path = path / "graft_recipe.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise RecipeError(f"recipe {path} does not exist") from None
        except ValueError as exc:
            raise RecipeError(f"recipe {path} is not valid JSON ({exc})") from exc
        return cls.from_dict(data)
