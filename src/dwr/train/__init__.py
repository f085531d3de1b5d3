"""Training and evaluation of BNN backbones on PyTorch Lightning.

``train(spec, data, out_dir, recipe=..., overrides=...)`` -> result dict;
``load_checkpoint(path)`` -> model rebuilt from the spec inside; ``evaluate(model, data)``.
"""

import warnings

# Lightning 2.6 on torch 2.13 warns about a torch pytree deprecation at import; not ours to fix.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")

from dwr.train.api import evaluate, train  # noqa: E402
from dwr.train.checkpoint import load_checkpoint, read_checkpoint  # noqa: E402
from dwr.train.recipes import RECIPES, list_recipes, resolve_recipe  # noqa: E402

__all__ = [
    "RECIPES",
    "evaluate",
    "list_recipes",
    "load_checkpoint",
    "read_checkpoint",
    "resolve_recipe",
    "train",
]
