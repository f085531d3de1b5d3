"""Export of dwr backbones to other runtimes: ONNX with standard operators (opset >= 17).

``export_onnx(model, "model.onnx")`` writes Sign + Conv with ±1 weights, the weight scale and
BN folded into one per-channel Mul and Add; ``to_onnx(model)`` returns the ``ModelProto``.
"""

from dwr.export.onnx import MIN_OPSET, export_onnx, to_onnx

__all__ = ["MIN_OPSET", "export_onnx", "to_onnx"]
