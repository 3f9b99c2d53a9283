"""Training of the demo models on synthetic phantoms (needs requirements-train.txt).

torch and onnx are training-only extras: nothing outside this package imports
them, and the product runs the exported ONNX files with ONNX Runtime alone.
"""
