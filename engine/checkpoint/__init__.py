"""Checkpoint folders: atomic writes, data-only reads, finding the latest, RNG state, export."""

from engine.checkpoint.export import export_weights, exported_config, load_exported
from engine.checkpoint.find import find_latest_checkpoint
from engine.checkpoint.io import CheckpointError
from engine.checkpoint.model_weights import load_weights
from engine.checkpoint.save import save_checkpoint

__all__ = [
    "CheckpointError",
    "export_weights",
    "exported_config",
    "load_exported",
    "find_latest_checkpoint",
    "load_weights",
    "save_checkpoint",
]
