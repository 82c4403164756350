"""The long short-term memory cell, with optional projection and peepholes."""
import numpy as np

from .base import Cell, input_projection, pick_variant


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
        xp = input_projection(x, params["W" + suffix], params.get("b" + suffix))
        T, B, _ = xp.shape
        none = np.zeros((0, self.units), x.dtype)
        out = np.empty((T, B, self.hidden_size), x.dtype)
        kernel = pick_variant(self.kernels(), "lstm_forward", B)
        kernel(xp, params["U" + suffix], params.get("P" + suffix, none),
               params.get("R" + suffix, none), h, c, out, lengths, reverse,
               self.clip(x.dtype), bool(self.config.input_forget), *(a.kernel_args(x.dtype) for a in self.activations))
        return out
