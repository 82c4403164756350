"""The long short-term memory cell, with optional projection and peepholes."""
import numpy as np

from ..kernels.cpu import lstm as template
from .base import Cell, pick_variant, row_chunks


class LSTMCell(Cell):
    """Gates i, f, g, o (PyTorch order); c_t = f c_{t-1} + i g, h_t = o f_h(c_t)."""

    name = "lstm"
    template = "lstm"
    equation = ("[i f g o]_t = W x_t + U h_{t-1} + b (+ peepholes P c), i f o -> f_gate, "
                "g -> f_cell; c_t = f c_{t-1} + i g; h_t = o f_a(c_t) (then R h_t with proj_size)")
    symbols = {"W": "W_ifgo", "U": "U_ifgo", "b": "b_ifgo", "P": "P_ifo", "R": "W_hr"}
    activation_slots = {"activation": "tanh", "gate_activation": "sigmoid",
                        "cell_activation": "tanh"}
    options = ("gate_activation", "cell_activation", "proj_size", "peepholes", "clip",
               "input_forget")

    @property
    def hidden_size(self) -> int:
        return self.config.proj_size or self.units

    @property
    def cell_size(self) -> int:
        return self.units

    def parameter_shapes(self):
        p, k, q = self.units, self.input_size, self.hidden_size
        shapes = {}
        for suffix in self.suffixes:
            shapes["W" + suffix] = ("input", (4 * p, k))
            shapes["U" + suffix] = ("recurrent", (4 * p, q))
            if self.config.bias:
                shapes["b" + suffix] = ("bias", (4 * p,))
            if self.config.peepholes:
                shapes["P" + suffix] = ("bias", (3, p))
            if self.config.proj_size:
                shapes["R" + suffix] = ("input", (q, p))
        return shapes

    def run_direction(self, params, suffix, x, h, lengths, reverse, c):
        T, B, _ = x.shape
        p, dtype, vectors = self.units, x.dtype, template.VECTORS
        none = np.zeros((0, p), dtype)
        W, U = params["W" + suffix], params["U" + suffix]
        P = self.packed("U" + suffix, (W, U), template.GATES, vectors)
        R = params.get("R" + suffix, none)
        R = self.packed("R" + suffix, (R[:, :0], R), 1, vectors)
        bias = params.get("b" + suffix, np.zeros(4 * p, dtype))
        out = np.empty((T, B, self.hidden_size), dtype)
        kernel = pick_variant(self.kernels(), "lstm_forward", B)
        kernel(x, P, bias, R, params.get("P" + suffix, none), h, c, out, lengths, reverse,
               self.clip(dtype), bool(self.config.input_forget), row_chunks(B),
               *(a.kernel_args(dtype) for a in self.activations))
        return out
