"""What the host offers: devices and NVML, onnxruntime's CUDA libraries, memory monitor,
user folders and atomic files.

May import only errors.
"""
