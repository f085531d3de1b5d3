"""Training and evaluation of BNN backbones on PyTorch Lightning.

``train(spec, data, out_dir, recipe=..., overrides=...)`` -> result dict;
``load_checkpoint(path)`` -> model rebuilt from the spec inside; ``evaluate(model, data)``.
"""

from dwr.train.api import evaluate, train
from dwr.train.checkpoint import load_checkpoint, read_checkpoint
from dwr.train.recipes import RECIPES, list_recipes, resolve_recipe

__all__ = [
    "RECIPES",
    "evaluate",
    "list_recipes",
    "load_checkpoint",
    "read_checkpoint",
    "resolve_recipe",
    "train",
]
