"""Training tasks: what model a family trains as, what a batch is, what the loss is.

Which task trains a model type is its architecture spec's ``task`` (:mod:`core.architectures`),
so the model types training accepts are exactly the ones Graft transfers:

========================  ============================  =====================  ============
task                      model types (family)          model                  eval metric
========================  ============================  =====================  ============
``causal_lm``             llama, mistral, qwen2/3,      AutoModelForCausalLM   perplexity
                          (llama); gemma, gemma2,
                          gemma3_text (gemma); gpt2
``masked_lm``             bert, roberta, xlm-roberta,   AutoModelForMaskedLM   perplexity
                          camembert (bert)
``image_classification``  vit, deit (vit); convnext,    ViTForImageClassif.;   accuracy
                          convnextv2                    AutoModelForImage…
``mlp_classification``    the generic MLP               nn.Sequential          accuracy
========================  ============================  =====================  ============

- :mod:`core.training.tasks.base`: :class:`Task`, :class:`TaskData`, the :data:`TASKS` registry,
  :func:`task_for`.
- :mod:`core.training.tasks.language`: the causal and masked LM tasks (token rows).
- :mod:`core.training.tasks.vision`: the image tasks on scikit-learn's digits (ViT, ConvNeXt, the MLP).
"""

from core.training.tasks.base import TASKS, Task, TaskData, family_of, get_task, task_for

__all__ = ["TASKS", "Task", "TaskData", "family_of", "get_task", "task_for"]
