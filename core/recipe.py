"""The recipe: one JSON file that the GUI saves, the CLI takes, and every export carries.

It names the source, the target sizes (and any other target config fields, ``config``), the
strategies (index + value per role), the seed and the export options; an export adds the source's
identity (path or repo id + revision, a SHA-256 of each shard) and the Graft version, so the same
recipe reproduces the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core import __version__
from core.devices import check_device_name
from core.dtypes import EXPORT_DTYPES
from core.errors import RecipeError
from core.plan import LAYER_MAPS, TargetSizes

FORMAT = 1


def _expect(value, kinds, name: str, what: str) -> None:
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise RecipeError(f"the recipe's {name} must be {what}, not {value!r}")
    if not isinstance(value, kinds):
        raise RecipeError(f"the recipe's {name} must be {what}, not {json.dumps(value)[:60]}")


def _check_choice(choice, where: str) -> None:
    if not isinstance(choice, dict) or not isinstance(choice.get("method"), str):
        raise RecipeError(f'{where} must be an object with a \'method\' name, like {{"method": "select"}}')
    unknown = set(choice) - {"method", "params"}
    if unknown:
        raise RecipeError(f"{where} has unknown key(s) {', '.join(sorted(unknown))}; it takes 'method' and 'params'")
    if not isinstance(choice.get("params", {}), dict):
        raise RecipeError(f"{where}['params'] must be an object of parameter values")


@dataclass
class Recipe:
    """Everything that decides a transfer's bytes."""

    source: str = "demo"
    revision: str | None = None
    target: dict = field(default_factory=dict)
    #: target config.json fields (``--set KEY=JSON``): a target size's field plans like its size flag,
    #: the others are written into the target config (:mod:`core.plan.config_set`). Empty is left out
    #: of the file, so a recipe without it saves the same bytes as before.
    config: dict = field(default_factory=dict)
    #: the target's family when it is not the source's (``"llama"`` for a bert source: :mod:`core.plan.cross`);
    #: None (left out of the file) keeps the source's family.
    target_family: str | None = None
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
        if not data["config"]:
            del data["config"]
        if data["target_family"] is None:
            del data["target_family"]
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
            raise RecipeError(
                f"unknown recipe field(s) {', '.join(sorted(unknown))}; expected {', '.join(sorted(known))}"
            )
        recipe = cls(**data)
        recipe.validate()
        return recipe

    def validate(self) -> None:
        """Refuse every field of the wrong type or value, naming it (no silent coercion)."""
        _expect(self.source, str, "source", "a path, 'demo' or a hub repo id")
        if not self.source:
            raise RecipeError("the recipe's source is empty; give a path, 'demo' or a hub repo id")
        _expect(self.revision, (str, type(None)), "revision", "a branch, tag or commit hash, or null")
        _expect(self.target, dict, "target", 'an object of sizes, like {"layers": 4, "hidden": 256}')
        TargetSizes.from_dict(self.target)
        _expect(self.config, dict, "config", 'an object of target config fields, like {"rope_theta": 20000.0}')
        if not all(isinstance(key, str) and key for key in self.config):
            raise RecipeError("the recipe's config keys must be config.json field names (non-empty strings)")
        _expect(self.target_family, (str, type(None)), "target_family", 'a family name like "llama", or null')
        if self.target_family is not None and not self.target_family:
            raise RecipeError('the recipe\'s target_family is empty; give a family name like "llama", or leave it out')
        if self.dtype is not None and self.dtype not in EXPORT_DTYPES:
            raise RecipeError(
                f"dtype must be one of {', '.join(EXPORT_DTYPES)} (or absent to keep the source's), not {self.dtype!r}"
            )
        if not isinstance(self.values, dict) or "default" not in self.values:
            raise RecipeError("the recipe's 'values' must map roles to strategies and include a 'default'")
        for role, choice in self.values.items():
            _check_choice(choice, f"values[{role!r}]")
        if self.index is not None:
            _check_choice(self.index, "index")
        named = ", ".join(LAYER_MAPS)
        if isinstance(self.layers, list):
            if not self.layers or not all(isinstance(i, int) and not isinstance(i, bool) for i in self.layers):
                raise RecipeError(f"layers must be {named} or a non-empty list of layer numbers, not {self.layers!r}")
        else:
            _expect(self.layers, str, "layers", f"{named} or a list of layer numbers")
            if self.layers not in LAYER_MAPS:
                raise RecipeError(f"layers must be {named} or a list of layer numbers, not {self.layers!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise RecipeError(f"seed must be a whole number from 0 to 2^63 − 1, not {self.seed!r}")
        _expect(self.device, str, "device", "cpu, cuda or cuda:N")
        check_device_name(self.device)
        if isinstance(self.max_shard_size, bool) or not isinstance(self.max_shard_size, (str, int)):
            raise RecipeError(
                f'max_shard_size must be a size like "5GB" or a number of bytes, not {self.max_shard_size!r}'
            )
        _expect(self.validation, dict, "validation", "an object of validation settings")
        _expect(self.provenance, dict, "provenance", "an object (written by Graft on export)")

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
        if path.exists() and not path.is_file():  # a FIFO or a device would block the read
            raise RecipeError(f"recipe {path} is not a regular file; give the graft_recipe.json file")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RecipeError(f"recipe {path} does not exist") from None
        except OSError as exc:
            raise RecipeError(f"cannot read recipe {path}: {exc.strerror or exc}") from exc
        except (ValueError, RecursionError) as exc:
            raise RecipeError(f"recipe {path} is not valid JSON ({str(exc)[:80] or 'nested too deeply'})") from exc
        return cls.from_dict(data)
