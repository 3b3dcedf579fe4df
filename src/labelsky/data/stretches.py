"""The names of the stretches :class:`labelsky.data.transforms.Preprocess` applies (described there); here, apart
from the torch code, so that settings and options can list them cheaply."""

__all__ = ["STRETCHES"]

STRETCHES = ("asinh", "khan", "standardize", "robust_asinh", "equalize", "none")
