"""The gated recurrent unit, with the reset gate after (default) or before the matmul."""
import numpy as np

from ..kernels.cpu import gru as template
from .base import Cell, pick_variant, row_chunks


class GRUCell(Cell):
    """Gates r, z, n (PyTorch order); h_t = (1 - z) n + z h_{t-1}."""

    name = "gru"
    template = "gru"
    equation = ("r, z = f_gate(W x_t + U h_{t-1} + b); n = f_a(W_n x_t + b_n + r (U_n h_{t-1} "
                "+ b_hn)), or f_a(W_n x_t + b_n + U_n (r h_{t-1}) + b_hn) without reset_after; "
                "h_t = (1 - z) n + z h_{t-1}")
    symbols = {"W": "W_rzn", "U": "U_rzn", "b": "b_rzn", "bn": "b_hn"}
    activation_slots = {"activation": "tanh", "gate_activation": "sigmoid"}
    options = ("gate_activation", "reset_after", "clip")

    def parameter_shapes(self):
        p, k = self.units, self.input_size
        shapes = {}
        for suffix in self.suffixes:
            shapes["W" + suffix] = ("input", (3 * p, k))
            shapes["U" + suffix] = ("recurrent", (3 * p, p))
            if self.config.bias:
                shapes["b" + suffix] = ("bias", (3 * p,))
                shapes["bn" + suffix] = ("bias", (p,))
        return shapes

    def run_direction(self, params, suffix, x, h, lengths, reverse):
        T, B, _ = x.shape
        p, dtype = self.units, x.dtype
        W, U = params["W" + suffix], params["U" + suffix]
        reset_after = self.config.reset_after is not False
        if reset_after:
            P = self.packed("U" + suffix, (W, U), template.GATES, template.VECTORS)
            Pn = self.packed("Un" + suffix, (W[:0], U[:0]), 1, template.SPLIT_VECTORS)
        else:
            P = self.packed("U" + suffix, (W[:2 * p], U[:2 * p]), 2, template.SPLIT_VECTORS)
            Pn = self.packed("Un" + suffix, (W[2 * p:], U[2 * p:]), 1, template.SPLIT_VECTORS)
        bias = params.get("b" + suffix, np.zeros(3 * p, dtype))
        bn = params.get("bn" + suffix, np.zeros(p, dtype))
        out = np.empty((T, B, p), dtype)
        kernel = pick_variant(self.kernels(), "gru_forward", B)
        kernel(x, P, Pn, bias, bn, h, out, lengths, reset_after, reverse, self.clip(dtype),
               row_chunks(B), *(a.kernel_args(dtype) for a in self.activations))
        return out
