"""The long short-term memory cell, with optional projection and peepholes."""
import numpy as np

from ..kernels.cpu import lstm as template
from ..kernels.cpu import tiles
from .base import Cell, run_rows


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
        T, B, k = x.shape
        p, q, dtype, gates = self.units, self.hidden_size, x.dtype, template.GATES
        vectors = gates * template.HALVES
        units = tiles.panel_units(dtype, gates, vectors)
        P = self.packed("U" + suffix, (params["W" + suffix], params["U" + suffix]), gates,
                        vectors)
        R = params.get("R" + suffix, np.zeros((0, p), dtype))
        R = self.packed("R" + suffix, (R[:, :0], R), 1, template.PROJECTION_HALVES)
        bias = tiles.padded(params.get("b" + suffix, np.zeros(gates * p, dtype)), gates, units)
        peep = tiles.padded(params.get("P" + suffix, np.zeros(3 * p, dtype)).reshape(-1), 3,
                            units)
        padded = bias.shape[1]
        width = q if self.config.proj_size else padded
        buffers = (np.zeros((B, k + width), dtype), np.zeros((B, k + width), dtype),
                   np.zeros((B, padded), dtype),
                   np.zeros((B if self.config.proj_size else 0, padded), dtype))
        out = np.empty((T, B, q), dtype)
        step_work = B * (gates * p * P.shape[1] + R.shape[1] * q)
        run_rows(self.kernels().lstm_forward_serial, B, T, step_work, x, P, bias, R,
                 np.zeros((1, R.shape[0] * R.shape[2]), dtype), peep, h, c, out, lengths,
                 reverse, self.clip(dtype), bool(self.config.input_forget), *buffers,
                 *(a.kernel_args(dtype) for a in self.activations))
        return out
