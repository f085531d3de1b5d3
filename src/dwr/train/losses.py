"""Losses and accuracy counts, as plain functions.

- Cross-entropy with label smoothing ``eps``: targets ``(1 - eps) * onehot + eps / C``.
- ReActNet's distribution loss: ``KL(p_t || p_s) = sum_c p_t,c (log p_t,c - log p_s,c)``
  averaged over the batch, with ``p = softmax(logits)`` of the (frozen, real-valued) teacher
  ``t`` and the student ``s``. Its gradient equals that of ``-sum_c p_t,c log p_s,c``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def classification_loss(
    logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    return F.cross_entropy(logits, target, label_smoothing=label_smoothing)


def distribution_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Batch mean of ``KL(softmax(teacher) || softmax(student))``; no gradient to the teacher."""
    log_ps = F.log_softmax(student_logits, dim=1)
    log_pt = F.log_softmax(teacher_logits.detach(), dim=1)
    return F.kl_div(log_ps, log_pt, reduction="batchmean", log_target=True)


def training_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    teacher_logits: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    distill_weight: float = 1.0,
) -> torch.Tensor:
    """CE alone, or ``(1 - w) * CE + w * KL`` when teacher logits are given."""
    ce = classification_loss(logits, target, label_smoothing)
    if teacher_logits is None:
        return ce
    kd = distribution_loss(logits, teacher_logits)
    if distill_weight >= 1.0:
        return kd
    return (1.0 - distill_weight) * ce + distill_weight * kd


def topk_correct(logits: torch.Tensor, target: torch.Tensor, ks=(1, 5)) -> list[int]:
    """Number of examples whose label is among the ``k`` highest logits, per ``k``."""
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices
    hit = top == target[:, None]
    return [int(hit[:, : min(k, kmax)].any(dim=1).sum()) for k in ks]
