"""The source model as a teacher: a distillation term added to every arm's task loss.

Minitron (METHODS.md §9) prunes a model and then distils from the original; here the source
that the target was built from teaches every arm of a validation run (the baseline too, so the
comparison stays about the starting weights), on the very batches they train on:

    loss = task loss + teacher_weight · distillation term

The teacher is the task model built from the source's config with **all** the source's tensors
loaded (float32, eval mode, no gradients). What it is matched on depends on what the source has:

- ``kind == "logits"`` (the source has the task head, e.g. a BertForMaskedLM or a causal LM):
  KL(teacher ‖ student) of the softmaxes at temperature T, times T² (Hinton et al., 2015), on the
  positions the task loss uses (masked tokens; every next-token position; the class logits);
- ``kind == "hidden"`` (no head: the demo sentence-transformer is a bare BertModel): the student's
  final hidden states against the teacher's on the same positions, restricted to the source
  channel that feeds each target channel (``Arm.teacher_map``, the plan's ``dims["hidden"].index``;
  None = the first channels), as an MSE divided by the teacher's mean square: 0 when the student
  reproduces the teacher, 1 for a student that outputs zeros, 1 + E[s²]/E[t²] for one unrelated
  to it (on the demo, whose final states have a small mean square: about 7 for the baseline and
  2.7 for a 3-layer, 192-wide ``select`` start at step 1).

The session computes the teacher's targets once per training step and shares them between all
arms (they see the same batch); the eval loss stays the task loss alone, so arms with and without
the term compare on one scale. Cost, measured on the demo (the whole 6 × 384 source teaching a
3 × 192 target, batches of 16 × 128 tokens, one busy CPU thread): the teacher's forward took
1.5 s per step, one arm's training step 2.1 s — a teacher adds about 0.7 of an arm per step.
"""

from __future__ import annotations

import contextlib
import logging
import time

import torch
from torch import nn

from core.errors import TrainingError
from core.training.arms import LoadReport, load_tensors

log = logging.getLogger(__name__)

KINDS = ("logits", "hidden")


def _head_names(model: nn.Module, report: LoadReport) -> list[str]:
    """Tensors outside the body (``base_model_prefix``) that the source did not supply."""
    prefix = getattr(model, "base_model_prefix", "") or ""
    lost = report.missing + report.mismatched
    if not prefix or not hasattr(model, prefix):
        return lost
    return [n for n in lost if not n.startswith(prefix + ".")]


class Teacher:
    """A frozen task model that produces distillation targets (see the module docstring).

    Attributes:
        model: the task model holding the source's tensors (eval mode, ``requires_grad`` False).
        task: the :class:`~core.training.tasks.Task` whose positions and outputs it uses.
        kind: ``"logits"`` or ``"hidden"``.
        temperature: the default T of the logit term (the session passes its config's).
        load: what loading the source's tensors did.
        seconds, calls: time spent in :meth:`targets` and how many times it ran.
    """

    def __init__(
        self,
        model: nn.Module,
        task,
        kind: str,
        *,
        device: torch.device | str = "cpu",
        temperature: float = 2.0,
        load: LoadReport | None = None,
        name: str = "the source",
    ) -> None:
        if kind not in KINDS:
            raise TrainingError(f"teacher kind {kind!r} is unknown; use one of {', '.join(KINDS)}")
        self.task, self.kind, self.temperature, self.name = task, kind, float(temperature), name
        self.load = load or LoadReport()
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.seconds = 0.0
        self.calls = 0

    @classmethod
    def from_source(cls, source, task, *, device: torch.device | str = "cpu", seed: int = 0) -> Teacher:
        """The task model built from ``source``'s config with the source's tensors loaded whole.

        Args:
            source: an opened :class:`core.sources.Source` (its hashes and values already trusted).
            task: a task name or :class:`~core.training.tasks.Task` (the students' task).
            device: where the teacher runs (the session moves it to its own device).
            seed: seeds the default draw of any head the source lacks (never used for targets).

        Raises:
            TrainingError: the source has no usable config or none of its tensors fit the model.
        """
        from core.architectures import detect
        from core.errors import ArchitectureError
        from core.training.tasks import Task, get_task

        task = task if isinstance(task, Task) else get_task(task)
        try:
            _, config = detect(source)
        except ArchitectureError as exc:
            raise TrainingError(f"cannot build a teacher from {source.display_name}: {exc}") from exc
        torch.manual_seed(seed)
        model = task.build_model(dict(config))
        state = {name: source.read(name) for name in source.tensors}
        report = load_tensors(model, state, dict(config))  # MoE experts stacked as from_pretrained does
        del state
        head = _head_names(model, report)
        body = [n for n in report.missing + report.mismatched if n not in head]
        if body:
            log.warning(
                "teacher: %d tensors of the body are not in the source (e.g. %s); they keep the default init",
                len(body),
                body[0],
            )
        kind = "hidden" if head else "logits"
        log.info(
            "teacher from %s: %d tensors, matched on its %s",
            source.display_name,
            report.loaded,
            "final hidden states (it has no task head)" if head else "logits",
        )
        return cls(model, task, kind, device=device, load=report, name=source.display_name)

    def to(self, device: torch.device | str) -> Teacher:
        """Move the teacher to ``device`` (in place); returns it."""
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    @property
    def description(self) -> str:
        return "logits of the source" if self.kind == "logits" else "hidden states of the source"

    @torch.no_grad()
    def targets(self, batch: dict[str, torch.Tensor], *, bf16: bool = False) -> dict[str, torch.Tensor]:
        """What the students are matched against on ``batch``: ``{"logits": …}`` or ``{"hidden": …}``.

        Run once per training step; every arm shares the result.

        Args:
            batch: the step's batch (CPU or device tensors; this rank's shard under torchrun).
            bf16: bf16 autocast (CUDA only), as the arms use.
        """
        start = time.perf_counter()
        cuda = self.device.type == "cuda"
        batch = {k: v.to(self.device, non_blocking=cuda) for k, v in batch.items()}
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if (cuda and bf16) else contextlib.nullcontext()
        key = self.kind
        with autocast:
            out = self.task.outputs(self.model, batch, logits=key == "logits")
        value = out.get(key)
        if value is None:
            raise TrainingError(f"task {self.task.name!r} returned no {key} for the teacher")
        if cuda:
            torch.cuda.synchronize(self.device)  # honest timing: the forward really ran
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return {key: value.detach()}

    def loss(
        self,
        student_out: dict,
        teacher_out: dict,
        hidden_index: list[int] | None = None,
        *,
        temperature: float | None = None,
    ) -> torch.Tensor:
        """The distillation term (a scalar, float32) for one arm's outputs.

        Args:
            student_out: the arm's ``task.compute`` dict (``"logits"``, ``"hidden"``).
            teacher_out: :meth:`targets` on the same batch.
            hidden_index: for ``kind == "hidden"``: the source channel of each target channel
                (length = the student's hidden size); None = the first channels of both.
            temperature: T of the logit term (default :attr:`temperature`).

        Raises:
            TrainingError: the student's outputs do not line up with the teacher's.
        """
        key = self.kind
        student, teacher = student_out.get(key), teacher_out.get(key)
        if student is None or teacher is None:
            raise TrainingError(
                f"the distillation term needs the arm's and the teacher's {key}; "
                f"task {self.task.name!r} did not return them"
            )
        student = student.reshape(-1, student.shape[-1]).float()
        teacher = teacher.reshape(-1, teacher.shape[-1]).to(student.device, torch.float32)
        if student.shape[0] != teacher.shape[0]:
            raise TrainingError(
                f"the teacher saw {teacher.shape[0]} positions and the arm {student.shape[0]}; "
                "both must run on the same batch"
            )
        if key == "logits":
            if student.shape != teacher.shape:
                raise TrainingError(
                    f"the teacher has {teacher.shape[-1]} outputs and the arm {student.shape[-1]}; "
                    "distil on logits only between models with the same outputs"
                )
            t = float(self.temperature if temperature is None else temperature)
            log_student = nn.functional.log_softmax(student / t, dim=-1)
            log_teacher = nn.functional.log_softmax(teacher / t, dim=-1)
            return nn.functional.kl_div(log_student, log_teacher, log_target=True, reduction="batchmean") * (t * t)
        teacher = select_channels(teacher, hidden_index, student.shape[-1])
        student = student[:, : teacher.shape[-1]]
        return (student - teacher).pow(2).mean() / teacher.pow(2).mean().clamp_min(1e-12)

    def info(self, weight: float, temperature: float, steps: int | None = None) -> dict:
        """The report's ``teacher`` block: kind, weight, temperature, seconds and ms per step."""
        steps = self.calls if steps is None else steps
        return {
            "kind": self.kind,
            "source": self.name,
            "weight": weight,
            "temperature": temperature,
            "seconds": self.seconds,
            "ms_per_step": 1000.0 * self.seconds / steps if steps else None,
        }


def select_channels(teacher: torch.Tensor, index: list[int] | None, width: int) -> torch.Tensor:
    """The teacher's columns feeding a student of ``width`` channels.

    ``index`` (the plan's hidden map) picks one source channel per target channel; without it the
    first ``min(width, teacher width)`` channels are used (the student is then cut to match).
    """
    if index is None:
        return teacher[:, : min(width, teacher.shape[-1])]
    if len(index) != width:
        raise TrainingError(
            f"the arm's teacher map has {len(index)} channels but its hidden states have {width}; "
            "give the plan's dims['hidden'].index of this target"
        )
    if min(index) < 0 or max(index) >= teacher.shape[-1]:
        raise TrainingError(
            f"the arm's teacher map names channels outside the teacher's {teacher.shape[-1]}; "
            "give the plan's dims['hidden'].index of this source"
        )
    return teacher[:, torch.as_tensor(index, dtype=torch.long, device=teacher.device)]
