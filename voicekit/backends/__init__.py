"""The voice's network on a runtime: the protocol and registry, onnxruntime, our torch port,
the ONNX graph split, voice loading and the memory estimate.

May import system, settings and errors.
"""
