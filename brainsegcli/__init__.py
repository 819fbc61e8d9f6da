"""brainseg: brain MRI segmentation with 2.5D multi-view deep networks."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("brainseg")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
