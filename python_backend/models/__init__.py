"""`TritonPythonModel` classes of the three Python-backend steps.

These modules import `triton_python_backend_utils`, which exists only inside a
Triton Python-backend stub.
"""
