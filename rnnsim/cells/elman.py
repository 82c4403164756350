"""The Elman (simple) recurrent cell."""
import numpy as np

from .base import Cell, ClipOptions
from .maps import LayerMap, rows


class ElmanMap(LayerMap):
    """h' = f(d + U h)."""

    dense_jacobian = True

    def __call__(self, s, d):
        return self.activate(0, d + s @ self.weight("U").T, slope=False)[0]

    def jvp(self, s, d, v):
        return rows(self._slope(s, d), self.weight("U") @ v)

    def jacobian(self, s, d):
        return rows(self._slope(s, d), self.weight("U"))

    def leaky_form(self):
        return np.ascontiguousarray(self.weight("U")), np.ones(self.size)

    def _slope(self, s, d):
        return self.activate(0, d + s @ self.weight("U").T)[1]


class ElmanOptions(ClipOptions):
    """The elman cell's own layer keys."""


class ElmanCell(Cell):
    """a_t = f_a(W_a x_t + U_a a_{t-1} + b_a)."""

    name = "elman"
    template = "elman"
    cuda_template = "elman"
    equation = "a_t = f_a(W_a x_t + U_a a_{t-1} + b_a)"
    symbols = {"W": "W_a", "U": "U_a", "b": "b_a"}
    map_class = ElmanMap
    Options = ElmanOptions

    def forward_call(self, params, suffix, x, lengths, reverse, out, h):
        from ..kernels.cpu import elman as template, tiles  # numba, on first run

        B = x.shape[1]
        dtype = x.dtype
        P = self.packed("U" + suffix, (params["W" + suffix], params["U" + suffix]), 1,
                        template.HALVES)
        bias = tiles.padded(params.get("b" + suffix, np.zeros(self.units, dtype)), 1,
                            tiles.panel_units(dtype, 1, template.HALVES))
        width = x.shape[2] + bias.shape[1]
        return (self.kernels().elman_forward_serial, B * self.units * P.shape[1],
                (x, P, bias, h, out, lengths, reverse, self.clip(dtype),
                 np.zeros((B, width), dtype), np.zeros((B, width), dtype),
                 self.activations[0].kernel_args(dtype)))
