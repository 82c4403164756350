"""The Elman (simple) recurrent cell."""
import numpy as np

from ..kernels.cpu import elman as template
from .base import Cell, pick_variant, row_chunks


class ElmanCell(Cell):
    """a_t = f_a(W_a x_t + U_a a_{t-1} + b_a)."""

    name = "elman"
    template = "elman"
    equation = "a_t = f_a(W_a x_t + U_a a_{t-1} + b_a)"
    symbols = {"W": "W_a", "U": "U_a", "b": "b_a"}
    options = ("clip",)

    def parameter_shapes(self):
        p, k = self.units, self.input_size
        shapes = {}
        for suffix in self.suffixes:
            shapes["W" + suffix] = ("input", (p, k))
            shapes["U" + suffix] = ("recurrent", (p, p))
            if self.config.bias:
                shapes["b" + suffix] = ("bias", (p,))
        return shapes

    def run_direction(self, params, suffix, x, h, lengths, reverse):
        T, B, _ = x.shape
        dtype = x.dtype
        P = self.packed("U" + suffix, (params["W" + suffix], params["U" + suffix]), 1,
                        template.VECTORS)
        bias = params.get("b" + suffix, np.zeros(self.units, dtype))
        out = np.empty((T, B, self.units), dtype)
        kernel = pick_variant(self.kernels(), "elman_forward", B)
        kernel(x, P, bias, h, out, lengths, reverse, self.clip(dtype), row_chunks(B),
               self.activations[0].kernel_args(dtype))
        return out
