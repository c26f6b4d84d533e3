"""Scale-out: the same stages on a Ray cluster (``--ray``), the store staying the one source of truth.

Layer: between ``generate`` (which takes work claims) and ``backends`` (the Ray backend wraps
one); it imports only ``backends``, ``store`` and below (the contract in pyproject.toml).
"""
