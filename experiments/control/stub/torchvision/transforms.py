"""An empty torchvision.transforms: any use says it is a stub (see __init__.py)."""


def __getattr__(name):
    raise AttributeError(f"torchvision.transforms.{name}: this is cut_side.py's stub; "
                         "install torchvision to use CUT's image-file loaders")
