"""Named training recipes (the papers' settings); every field can be overridden from the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from brainsegcli.types import BrainsegError


@dataclass
class Recipe:
    optimizer: str = "adam"                 # adam | adamw | sgd
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    scheduler: str = "warmup-cosine"        # constant | warmup-poly | warmup-exp | warmup-cosine | plateau
    warmup: int = 0                         # iterations
    poly_power: float = 0.9
    exp_gamma: float = 0.95                 # per epoch, after warm-up
    plateau_factor: float = 0.1
    plateau_patience: int = 10              # epochs without improvement of the validation loss
    early_stop: int = 0                     # epochs without improvement (0: off)
    select_by: str = "val_dice"             # val_dice | val_loss
    batch_size: int = 16
    epochs: int = 50
    ce_weight: float = 0.2                  # alpha
    dice_weight: float = 0.8                # beta
    edge_weight: float = 0.0
    class_weights: list[float] | None = None
    model_args: dict[str, Any] = field(default_factory=dict)


RECIPES: dict[str, Recipe] = {
    # LoRA-SAM paper: AdamW (0.9, 0.999), weight decay 0.1, lr 0.005, 250 warm-up iterations then decay,
    # LoRA rank 16 on q and v; 0.2 CE + 0.8 Dice.
    "lora-sam": Recipe(optimizer="adamw", lr=0.005, weight_decay=0.1, scheduler="warmup-poly", warmup=250,
                       batch_size=8, epochs=100, model_args={"lora_rank": 16}),
    # BrainSegNet paper: Adam, batch 8, linear warm-up then exponential decay, 70 epochs, 0.2 CE + 0.8 Dice,
    # plus the auxiliary edge loss of the boundary-refinement head.
    "brainsegnet": Recipe(optimizer="adam", lr=1e-4, scheduler="warmup-exp", warmup=500, exp_gamma=0.95,
                          batch_size=8, epochs=70, edge_weight=0.5),
    # Tissue paper: lr 5e-4, x0.1 after 10 epochs without improvement, early stopping after 20,
    # best model by validation loss; class-weighted CE (background 1, CSF 10, GM 3, WM 3).
    "tissue": Recipe(optimizer="adam", lr=5e-4, scheduler="plateau", plateau_factor=0.1, plateau_patience=10,
                     early_stop=20, select_by="val_loss", ce_weight=1.0, dice_weight=0.0,
                     class_weights=[1.0, 10.0, 3.0, 3.0], batch_size=16, epochs=100),
    # DeepMRSeg: Adam, lr 1e-3 with warm-up and cosine decay; CE + Dice.
    "deepmrseg": Recipe(optimizer="adam", lr=1e-3, scheduler="warmup-cosine", warmup=200, batch_size=16,
                        epochs=60, ce_weight=0.5, dice_weight=0.5),
}


def get_recipe(name: str, **overrides: Any) -> Recipe:
    try:
        base = RECIPES[name]
    except KeyError:
        raise BrainsegError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}") from None
    known = {f.name for f in fields(Recipe)}
    bad = set(overrides) - known
    if bad:
        raise ValueError(f"unknown recipe fields {sorted(bad)}")
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})
