"""The Elman (simple) recurrent cell."""
import numpy as np

from .base import Cell, input_projection, pick_variant


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
        xp = input_projection(x, params["W" + suffix], params.get("b" + suffix))
        out = np.empty_like(xp)
        kernel = pick_variant(self.kernels(), "elman_forward", x.shape[1])
        kernel(xp, params["U" + suffix], h, out, lengths, reverse, self.clip(x.dtype),
               self.activations[0].kernel_args(x.dtype))
        return out

