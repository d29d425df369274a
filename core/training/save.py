"""Keeping the trained weights: each arm's model after a validation run, as a loadable checkpoint.

``out_dir/<arm>/`` holds what ``transformers`` loads as-is (``AutoModelForMaskedLM.from_pretrained``
and friends): ``config.json`` and ``model.safetensors`` written by ``save_pretrained`` (tied
weights handled by transformers), the tokenizer files of the run's tokenizer folder, and
``graft_trained.json``::

    {"graft_trained": 1, "arm": "select", "status": "complete" | "partial", "partial": false,
     "steps": 200, "planned_steps": 200, "final_eval_loss": 4.93, "eval_step": 200, "recipe": {…}, …}

A family without a transformers class (the generic MLP: its spec's ``export_files`` gives no
config.json) is written the way :mod:`core.export` writes it (``model.safetensors`` whose metadata
records what rebuilds it: the MLP's widths and activation, for :func:`core.export.load_mlp`). ``final_eval_loss`` is the eval loss of the saved weights:
the run's last evaluation when it was taken at the saved step, else an evaluation at save time
(a cancelled run saves its partial weights, ``"partial": true``).

Each arm's folder is written atomically (a hidden temporary sibling swapped into place, see
:mod:`core.outdir`) and refused by the same rules as an export: never the source or inside it,
never an arm's own export folder or the tokenizer folder, ``force`` replaces only a folder Graft
wrote as a trained model (its ``graft_trained.json``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core import __version__
from core.errors import ExportError, TrainingError
from core.outdir import AtomicFolder, Kind, check_not_source, check_out_dir

log = logging.getLogger(__name__)

TRAINED_NAME = "graft_trained.json"
TRAINED_FORMAT = 1


def _trained_file(name: str) -> bool:
    from core.sources.base import is_aux_file

    return (
        name in ("config.json", TRAINED_NAME)
        or is_aux_file(name)
        or name.endswith((".safetensors", ".safetensors.index.json"))
    )


#: a trained-model folder, as :mod:`core.outdir` recognises one Graft wrote.
TRAINED = Kind("trained model", TRAINED_NAME, "graft_trained", _trained_file)


@dataclass(frozen=True)
class SaveTrained:
    """Where and what :func:`save_trained` writes at the end of a run (``save_trained=`` of the jobs).

    Attributes:
        out_dir: the parent folder; each arm goes to ``out_dir/<arm>/``.
        names: arms to save (None: every arm but the baseline).
        force: replace arm folders an earlier run saved.
        protect: paths never written over (the source's).
        recipes: arm → the recipe of its start, recorded in ``graft_trained.json``.
    """

    out_dir: Path
    names: tuple[str, ...] | None = None
    force: bool = False
    protect: tuple[Path, ...] = ()
    recipes: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def of(cls, value: str | Path | SaveTrained | None) -> SaveTrained | None:
        """A path (or None, or a SaveTrained) as a SaveTrained."""
        if value is None or isinstance(value, SaveTrained):
            return value
        return cls(Path(value))

    def check(self, arm_names: Sequence[str], baseline: str | None, read_from: Sequence[Path] = ()) -> None:
        """Refuse before training what :func:`save_trained` would refuse after it."""
        names = arms_to_save(arm_names, baseline, self.names)
        check_trained_dir(self.out_dir, names, force=self.force, protect=tuple(self.protect) + tuple(read_from))

    def check_arms(self, arms: Sequence, tokenizer: str | Path | None = None) -> None:
        """:meth:`check` for these :class:`~core.training.arms.Arm` objects: their export folders
        and the tokenizer folder (default: the first arm folder holding one) are protected too."""
        from core.training.session import find_tokenizer

        baseline = next((a.name for a in arms if a.is_baseline), None)
        tok = tokenizer or find_tokenizer(arms)
        read_from = [a.path for a in arms if a.path is not None] + ([Path(tok)] if tok else [])
        self.check([a.name for a in arms], baseline, read_from)

    def save(self, session) -> dict[str, Path]:
        return session.save_trained(
            self.out_dir, self.names, force=self.force, protect=self.protect, recipes=self.recipes
        )


def check_arm_folder_name(name: str) -> None:
    """Refuse an arm name that cannot be one folder's name (``a/b``, ``..``, a hidden name)."""
    if not name or name in (".", "..") or name.startswith(".") or "/" in name or os.sep in name or "\0" in name:
        raise TrainingError(f"the arm name {name!r} cannot be a folder name for --save-trained; rename the arm")


def check_trained_dir(
    out_dir: str | Path, names: Sequence[str], *, force: bool = False, protect: Sequence[Path] = ()
) -> None:
    """Refuse, before any training, a ``--save-trained`` folder the rules do not allow.

    Raises:
        TrainingError: an arm name that is not a folder name.
        ExportError: the folder is or lies in a protected path, is not a folder, or an arm's
            folder exists with content Graft may not replace.
    """
    out = Path(out_dir).expanduser()
    check_not_source(out, protect, "trained models")
    if os.path.lexists(out) and (os.path.islink(out) or not os.path.isdir(out)):
        raise ExportError(f"{out} exists and is not a folder (or is a link); choose another --save-trained folder")
    for name in names:
        check_arm_folder_name(name)
        check_out_dir(out / name, kind=TRAINED, force=force, protect=protect)


def arms_to_save(arm_names: Sequence[str], baseline: str | None, names: Sequence[str] | None) -> list[str]:
    """``names`` checked against the arms, or every arm but the baseline."""
    if names is None:
        return [n for n in arm_names if n != baseline]
    unknown = [n for n in names if n not in arm_names]
    if unknown:
        raise TrainingError(f"there is no arm named {', '.join(unknown)} to save; the arms are {', '.join(arm_names)}")
    return list(dict.fromkeys(names))


def save_trained(
    session,
    out_dir: str | Path,
    names: Sequence[str] | None = None,
    *,
    force: bool = False,
    protect: Sequence[Path] = (),
    recipes: Mapping[str, dict] | None = None,
) -> dict[str, Path]:
    """Write each named arm's trained model of ``session`` to ``out_dir/<arm>/``.

    Args:
        session: a :class:`~core.training.session.ValidationSession` (after, or part way through, its steps).
        out_dir: the parent folder (created if missing).
        names: arms to save (default: every arm but the baseline).
        force: replace an arm folder that an earlier ``save_trained`` wrote.
        protect: paths never to write over (the source's: :func:`core.outdir.protected_paths`);
            the arms' export folders and the tokenizer folder are added.
        recipes: arm → the recipe that built its start, recorded in ``graft_trained.json``.

    Returns:
        Arm name → its folder (absolute).
    """
    names = arms_to_save([r.name for r in session.runners], session.baseline, names)
    protect = tuple(protect) + session.protected_paths()
    out = Path(os.path.abspath(Path(out_dir).expanduser()))
    check_trained_dir(out, names, force=force, protect=protect)
    report = session.report()
    partial = report.status != "complete"
    runners = {r.name: r for r in session.runners}
    arms = {a.name: a for a in session.arms}
    saved: dict[str, Path] = {}
    for name in names:
        runner, arm = runners[name], arms[name]
        evals = [m for m in report.records.get(name, []) if m.eval_loss is not None]
        if evals and evals[-1].step == runner.step_count:
            loss, metric, at = evals[-1].eval_loss, evals[-1].eval_metric, evals[-1].step
        else:  # a partial run stopped between evaluations: evaluate the weights being saved
            (loss, metric), at = runner.evaluate(session.eval_batches), runner.step_count
        info = {
            "graft_trained": TRAINED_FORMAT,
            "graft_version": __version__,
            "arm": name,
            "description": arm.description,
            "task": session.task.name,
            "metric": session.task.metric,
            "status": "partial" if partial else "complete",
            "partial": partial,
            "steps": runner.step_count,
            "planned_steps": session.config.steps,
            "final_eval_loss": loss,
            "final_eval_metric": metric,
            "eval_step": at,
            "distilled": bool(session.teacher is not None and arm.distill),
            "recipe": (recipes or {}).get(name),
            "config": asdict(session.config),
        }
        folder = AtomicFolder(out / name, kind=TRAINED, force=force, protect=protect)
        with folder as tmp:
            _write_model(runner.model, arm.config, tmp)
            _copy_tokenizer(session.tokenizer, tmp)
            (tmp / TRAINED_NAME).write_text(
                json.dumps(info, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
            )
        saved[name] = out / name
        log.info(
            "saved the trained %s (%s, %d steps, eval loss %.4f) to %s",
            name,
            info["status"],
            runner.step_count,
            loss,
            out / name,
        )
    return saved


def _write_model(model, config: dict, folder: Path) -> None:
    from core.training.tasks import family_of

    config_json, family_metadata = family_of(config).export_files(config)
    if config_json is None:  # no transformers class (the MLP): the weights and their metadata, as an export
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(folder / "model.safetensors"), metadata={"graft.version": __version__, **family_metadata})
        return
    from transformers.utils import logging as hf_logging

    from core.pipeline import REMOTE_CODE_KEYS

    for key in REMOTE_CODE_KEYS:  # weights for transformers' own classes: no code from elsewhere
        if hasattr(model.config, key):
            delattr(model.config, key)
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # the caller reports progress; no tqdm bar per file
    try:
        model.save_pretrained(folder)
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    _honour_umask(folder)


def _honour_umask(folder: Path) -> None:
    """Give every file the mode a plain write would (transformers writes the weights 0600)."""
    try:
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("Umask:"))
        mask = int(line.split()[1], 8)
    except (OSError, StopIteration, ValueError, IndexError):
        return  # no /proc: leave the modes as written
    for path in folder.iterdir():
        if path.is_file() and not path.is_symlink():
            os.chmod(path, 0o666 & ~mask)


def _copy_tokenizer(tokenizer_dir: str | None, folder: Path) -> None:
    """Copy the tokenizer folder's tokenizer/preprocessing files (what save_pretrained wrote wins)."""
    if not tokenizer_dir:
        return
    from core.errors import SourceError
    from core.pipeline import strip_remote_code
    from core.sources.base import aux_file_names
    from core.sources.trust import checked_file, load_json

    root = Path(tokenizer_dir)
    for name in aux_file_names(root):
        path = root / name
        if (folder / name).exists():
            continue
        try:
            src = checked_file(path, root, f"the tokenizer's {name}")
        except SourceError as exc:
            log.warning("not copied into the trained model: %s", exc)
            continue
        try:
            data = load_json(path, root, name) if name.endswith(".json") and name != "tokenizer.json" else None
        except SourceError:  # an unreadable side file is copied as it is, as an export does
            data = None
        if isinstance(data, dict) and strip_remote_code(data):
            (folder / name).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        else:
            shutil.copyfile(src, folder / name)
