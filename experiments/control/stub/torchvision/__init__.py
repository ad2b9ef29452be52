"""Stands in for torchvision when it is not installed (see ../../cut_side.py).

CUT's option parser imports its image-file data modules, which import
torchvision at module level; the model code and cut_side.py never call it.
"""
from . import transforms  # noqa: F401


def __getattr__(name):
    raise AttributeError(f"torchvision.{name}: this is cut_side.py's stub; install torchvision "
                         "to use CUT's image-file loaders")
