"""The gated recurrent unit, with the reset gate after (default) or before the matmul."""
from typing import Optional

import numpy as np
from pydantic import Field

from .. import device
from .base import Cell, ClipOptions, GateOptions
from .maps import LayerMap, rows


class GRUMap(LayerMap):
    """r, z = f_gate(d_rz + U_rz h); n = f(d_n + r (U_n h + b_hn)) with reset_after, else
    f(d_n + U_n (r h) + b_hn); h' = (1 - z) n + z h."""

    def _forward(self, s, d, slopes=True):
        p = self.size
        u = self.weight("U")
        bn = self.weight("bn")
        bn = np.zeros(p) if bn is None else bn
        a = s @ u.T
        r, r_slope = self.activate(1, d[..., :p] + a[..., :p], slope=slopes)
        z, z_slope = self.activate(1, d[..., p:2 * p] + a[..., p:2 * p], slope=slopes)
        if self.reset_after:
            pre_n = d[..., 2 * p:] + r * (a[..., 2 * p:] + bn)
        else:
            pre_n = d[..., 2 * p:] + (r * s) @ u[2 * p:].T + bn
        n, n_slope = self.activate(0, pre_n, slope=slopes)
        return a, bn, r, r_slope, z, z_slope, n, n_slope

    @property
    def reset_after(self) -> bool:
        return self.layer.options.reset_after is not False

    def __call__(self, s, d):
        _, _, _, _, z, _, n, _ = self._forward(s, d, slopes=False)
        return (1.0 - z) * n + z * s

    def jvp(self, s, d, v):
        p = self.size
        u = self.weight("U")
        a, bn, r, r_slope, z, z_slope, n, n_slope = self._forward(s, d)
        da = u @ v
        dr = rows(r_slope, da[..., :p, :])
        dz = rows(z_slope, da[..., p:2 * p, :])
        if self.reset_after:
            dpre_n = rows(a[..., 2 * p:] + bn, dr) + rows(r, da[..., 2 * p:, :])
        else:
            dpre_n = u[2 * p:] @ (rows(s, dr) + rows(r, v))
        return rows(1.0 - z, rows(n_slope, dpre_n)) + rows(s - n, dz) + rows(z, v)


class GRUOptions(GateOptions, ClipOptions):
    """The gru cell's own layer keys."""

    reset_after: Optional[bool] = Field(default=None, description="reset after the recurrent "
                                        "matmul (default true; false: ONNX's default)")


class GRUCell(Cell):
    """Gates r, z, n (PyTorch order); h_t = (1 - z) n + z h_{t-1}."""

    name = "gru"
    template = "gru"
    cuda_template = "gru"
    gate_labels = "rzn"
    equation = ("r, z = f_gate(W x_t + U h_{t-1} + b); n = f_a(W_n x_t + b_n + r (U_n h_{t-1} "
                "+ b_hn)), or f_a(W_n x_t + b_n + U_n (r h_{t-1}) + b_hn) without reset_after; "
                "h_t = (1 - z) n + z h_{t-1}")
    symbols = {"W": "W_rzn", "U": "U_rzn", "b": "b_rzn", "bn": "b_hn"}
    activation_slots = {"activation": "tanh", "gate_activation": "sigmoid"}
    Options = GRUOptions
    map_class = GRUMap

    def parameter_shapes(self):
        shapes = {}
        for suffix in self.suffixes:
            shapes.update(self.gate_shapes(suffix))
            if self.config.bias:
                shapes["bn" + suffix] = ("bias", (self.units,))
        return shapes

    def forward_call(self, params, suffix, x, lengths, reverse, out, h):
        from ..kernels.cpu import gru as template, tiles  # numba, on first run

        B = x.shape[1]
        p, dtype, halves = self.units, x.dtype, template.HALVES
        W, U = params["W" + suffix], params["U" + suffix]
        reset_after = self.options.reset_after is not False
        if reset_after:
            P = self.packed("U" + suffix, (W, U), 3, 3 * halves)
            Pn = self.packed("Un" + suffix, (W[:0], U[:0]), 1, halves)
        else:
            P = self.packed("U" + suffix, (W[:2 * p], U[:2 * p]), 2, 2 * halves)
            Pn = self.packed("Un" + suffix, (W[2 * p:], U[2 * p:]), 1, halves)
        units = tiles.panel_units(dtype, 1, halves)
        b = params.get("b" + suffix, np.zeros(3 * p, dtype))
        bn = params.get("bn" + suffix, np.zeros(p, dtype))
        bias = tiles.padded(np.concatenate([b, bn]), 4, units)
        bias_n = tiles.padded(b[2 * p:] + bn, 1, units)
        k, padded = x.shape[2], bias.shape[1]
        split = 0 if reset_after else B
        buffers = (np.zeros((B, k + padded), dtype), np.zeros((B, k + padded), dtype),
                   np.zeros((split, padded), dtype), np.zeros((split, k + padded), dtype))
        return (self.kernels().gru_forward_serial, B * 3 * p * P.shape[1],
                (x, P, Pn, bias, bias_n, h, out, lengths, reset_after, reverse,
                 self.clip(dtype), *buffers, *(a.kernel_args(dtype) for a in self.activations)))

    def cuda_row_values(self) -> int:
        return self.units * (1 if self.options.reset_after is not False else 2)

    def run_cuda(self, run, params, suffix, h):
        p = self.units
        per_block = run.plan.units_per_block(p)
        reset_after = self.options.reset_after is not False
        stage, shared = run.stage(3 * p * per_block)
        Ut = run.weights("U" + suffix, (params["U" + suffix],), lambda U: device.transposed(U, 3))
        bn = run.weights("bn" + suffix, (params.get("bn" + suffix, np.zeros(p)),))
        h_dev = run.upload(h)
        scratch = run.cuda.device_array((2, h.shape[0], p) if not reset_after else (2, 0, p),
                                        run.dtype)
        clip = self.clip(run.dtype)
        out = run.recur(params, suffix, p, "gru_forward", shared,
                        lambda xp, out, lengths, steps: (xp, Ut, bn, h_dev, out, scratch, lengths,
                                                         steps, reset_after, run.reverse, clip,
                                                         per_block, stage, *run.args))
        h_dev.copy_to_host(h)
        return out
