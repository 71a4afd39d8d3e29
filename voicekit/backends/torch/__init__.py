"""The torch backend: our own PyTorch VITS with the weights read from the voice's ONNX file.

The package itself imports nothing heavy, so ``shapes`` stays usable without
torch (memory estimates need it); the backend registry in ``stages.base``
imports ``backend`` only when ``--backend torch`` is asked for, which is where a
missing torch surfaces and becomes the install hint.
"""
