"""The update-gate RNN (UGRNN; Collins, Sohl-Dickstein & Sussillo, 2017) as an rnnsim cell.

    c_t = f(W_c x_t + U_c h_{t-1} + b_c)            candidate
    g_t = f_gate(W_g x_t + U_g h_{t-1} + b_g)       update gate
    h_t = g_t h_{t-1} + (1 - g_t) c_t

One registration (``register_cells``) brings all of it to rnnsim: the parameters, the CPU
kernel (``cpu.py``), the GPU kernel (``cuda.py``) and the dynamics map with its Jacobian.
"""
import numpy as np

import rnnsim
from rnnsim.cells import Cell
from rnnsim.cells.base import ClipOptions, GateOptions, input_projection, project_into
from rnnsim.cells.maps import LayerMap, rows


class UGRNNMap(LayerMap):
    """h' = g h + (1 - g) c with c = f(d_c + U_c h), g = f_gate(d_g + U_g h)."""

    def _gates(self, s, d):
        p = self.size
        z = d + s @ self.weight("U").T
        return self.activate(0, z[..., :p]), self.activate(1, z[..., p:])

    def __call__(self, s, d):
        (c, _), (g, _) = self._gates(s, d)
        return g * s + (1.0 - g) * c

    def jvp(self, s, d, v):
        p = self.size
        (c, c_slope), (g, g_slope) = self._gates(s, d)
        dz = self.weight("U") @ v
        return (rows(g, v) + rows((s - c) * g_slope, dz[..., p:, :])
                + rows((1.0 - g) * c_slope, dz[..., :p, :]))


class UGRNNOptions(GateOptions, ClipOptions):
    """The layer keys a ugrnn layer takes besides every layer's: ``gate_activation``, ``clip``."""


class UGRNNCell(Cell):
    """h_t = g h_{t-1} + (1 - g) c: candidate c and update gate g from W x_t + U h_{t-1} + b."""

    name = "ugrnn"
    template = "rnnsim_ugrnn.cpu"
    cuda_template = "rnnsim_ugrnn.cuda"
    gate_labels = "cg"
    equation = ("c = f_a(W_c x_t + U_c h_{t-1} + b_c); g = f_gate(W_g x_t + U_g h_{t-1} + b_g); "
                "h_t = g h_{t-1} + (1 - g) c")
    symbols = {"W": "W_cg", "U": "U_cg", "b": "b_cg"}
    activation_slots = {"activation": "tanh", "gate_activation": "sigmoid"}
    Options = UGRNNOptions
    map_class = UGRNNMap

    def run_direction(self, params, suffix, x, h, lengths, reverse):
        xp = input_projection(x, params["W" + suffix], params.get("b" + suffix))
        out = np.empty(x.shape[:2] + (self.units,), x.dtype)
        kernel, args = self.recurrence(params, suffix, xp, h, out, lengths, reverse)
        kernel(*args)
        return out

    def recurrence(self, params, suffix, xp, h, out, lengths, reverse):
        """The kernel and its arguments over the input projections ``xp`` (T, B, 2p)."""
        return self.kernels().ugrnn_forward_serial, (
            xp, np.ascontiguousarray(params["U" + suffix]), h, out, lengths, reverse,
            self.clip(xp.dtype), *(a.kernel_args(xp.dtype) for a in self.activations))

    def step_ops(self, params, x, states, out):
        """A step for ``Network.stepper``: the input projection (NumPy's BLAS, as ``run``
        computes it), then the compiled recurrence."""
        B = x.shape[1]
        xp = np.zeros((1, B, 2 * self.units), x.dtype)
        return [(project_into, (x, params["W"], params.get("b"), xp)),
                self.recurrence(params, "", xp, states["h"][0], out, np.ones(B, np.int64),
                                False)]


@rnnsim.hookimpl
def register_cells(register):
    register(UGRNNCell, description="update-gate RNN: h = g h + (1 - g) c (Collins et al. 2017)")
