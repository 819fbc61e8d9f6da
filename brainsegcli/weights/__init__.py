"""Checkpoints: format, manifest, resolution of ``--weights``."""
