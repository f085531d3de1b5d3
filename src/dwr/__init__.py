"""dwr: fast and accurate binary neural networks by Depth-Width Reshaping (AAAI 2023)."""

from dwr.backbones import BackboneSpec, build, create_model, get_spec, list_models
from dwr.errors import DwrError

__version__ = "0.1.0"

__all__ = ["BackboneSpec", "DwrError", "build", "create_model", "get_spec", "list_models"]
