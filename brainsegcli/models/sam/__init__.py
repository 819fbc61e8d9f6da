"""SAM-based models built on the official segment-anything modules (no torchvision needed)."""
