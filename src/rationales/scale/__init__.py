"""Scale-out: the same stages on a Ray cluster (``--ray``), the store staying the one source of truth.

Layer: beside ``backends`` (it wraps a backend); imports nothing above it.
"""
