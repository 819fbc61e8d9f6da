"""Registered model families. Importing this package registers every architecture."""

from brainsegcli.models import deepmrseg, unet  # noqa: F401  (registration)
from brainsegcli.models.sam import brainsegnet, lora_sam  # noqa: F401  (registration)
from brainsegcli.models.registry import (
    ModelSpec,
    count_parameters,
    create_model,
    get_spec,
    list_models,
    register_model,
    transfer_to_new_head,
)

__all__ = ["ModelSpec", "count_parameters", "create_model", "get_spec", "list_models", "register_model",
           "transfer_to_new_head"]
