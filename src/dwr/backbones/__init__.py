"""Backbones built from a spec: the spec type, blocks, the factory and the model registry."""

from dwr.backbones.model import Backbone, build
from dwr.backbones.registry import create_model, get_spec, list_models, register_model
from dwr.backbones.spec import BackboneSpec

__all__ = [
    "Backbone",
    "BackboneSpec",
    "build",
    "create_model",
    "get_spec",
    "list_models",
    "register_model",
]
