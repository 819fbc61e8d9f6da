"""Losses: alpha * (class-weighted) cross-entropy + beta * soft Dice, with the sagittal left/right
merge of the inference engine, and BrainSegNet's auxiliary edge loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def merge_sagittal(probs: torch.Tensor, target: torch.Tensor, is_sagittal: torch.Tensor,
                   groups: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """For sagittal samples, sum each left/right pair's probabilities into the pair's first index and
    map the target the same way (the engine lets the other views choose the side)."""
    if groups is None or not bool(is_sagittal.any()):
        return probs, target
    summed = torch.zeros_like(probs).index_add_(1, groups, probs)
    sel = is_sagittal.view(-1, 1, 1, 1)
    return torch.where(sel, summed, probs), torch.where(is_sagittal.view(-1, 1, 1), groups[target], target)


def dice_loss(probs: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - mean soft Dice over the classes present in the target of the batch (false positives of an
    absent class are left to the cross-entropy term)."""
    onehot = F.one_hot(target, probs.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    present = onehot.sum(dims) > 0
    dice = (2 * inter + eps) / (denom + eps)
    return 1 - dice[present].mean() if present.any() else probs.sum() * 0


class SegmentationLoss(torch.nn.Module):
    def __init__(self, num_classes: int, alpha: float = 0.2, beta: float = 0.8,
                 class_weights: list[float] | None = None, sagittal_groups=None, edge_weight: float = 0.0):
        super().__init__()
        self.alpha, self.beta, self.edge_weight = alpha, beta, edge_weight
        w = torch.as_tensor(class_weights, dtype=torch.float32) if class_weights else torch.ones(num_classes)
        if len(w) != num_classes:
            raise ValueError(f"{len(w)} class weights for {num_classes} classes")
        self.register_buffer("class_weights", w)
        g = None if sagittal_groups is None else torch.as_tensor(sagittal_groups, dtype=torch.long)
        self.register_buffer("groups", g)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, is_sagittal: torch.Tensor,
                edge_logits: torch.Tensor | None = None) -> torch.Tensor:
        probs = torch.softmax(logits.float(), dim=1)
        probs, tgt = merge_sagittal(probs, target, is_sagittal, self.groups)
        ce = F.nll_loss(torch.log(probs.clamp_min(1e-7)), tgt, weight=self.class_weights)
        loss = self.alpha * ce + self.beta * dice_loss(probs, tgt)
        if edge_logits is not None and self.edge_weight > 0:
            loss = loss + self.edge_weight * edge_loss(edge_logits, target)
        return loss


def label_edges(target: torch.Tensor) -> torch.Tensor:
    """1 where a pixel's 4-neighbourhood holds another label (B, H, W) -> float (B, 1, H, W)."""
    t = target.unsqueeze(1).float()
    p = F.pad(t, (1, 1, 1, 1), mode="replicate")
    diff = ((p[..., 1:-1, :-2] != t) | (p[..., 1:-1, 2:] != t) | (p[..., :-2, 1:-1] != t) | (p[..., 2:, 1:-1] != t))
    return diff.float()


def edge_loss(edge_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    edges = label_edges(target)
    pos = edges.mean().clamp(1e-3, 0.5)
    return F.binary_cross_entropy_with_logits(edge_logits.float(), edges, pos_weight=(1 - pos) / pos)
