"""The long short-term memory cell, with optional projection and peepholes."""
from typing import Optional

import numpy as np
from pydantic import Field

from ..config import Spec
from .. import device
from .base import Cell, ClipOptions, GateOptions
from .maps import LayerMap, activation_range, rows


class LSTMMap(LayerMap):
    """State [h, c]: gates i f g o from d + U h (+ peepholes P c); c' = f c + i g;
    h' = o f_a(c') (then R h' with proj_size); ``input_forget`` couples f = 1 - i."""

    @property
    def size(self) -> int:
        return self.layer.hidden_size + self.layer.units

    def _forward(self, s, d, slopes=True):
        q, p = self.layer.hidden_size, self.layer.units
        h, c = s[..., :q], s[..., q:]
        z = d + h @ self.weight("U").T
        peep = self.weight("P")
        gi, gf, gg, go = (z[..., k * p:(k + 1) * p] for k in range(4))
        if peep is not None:
            gi, gf = gi + peep[0] * c, gf + peep[1] * c
        i, i_slope = self.activate(1, gi, slope=slopes)
        if self.layer.options.input_forget:
            f, f_slope = 1.0 - i, None if i_slope is None else -i_slope
        else:
            f, f_slope = self.activate(1, gf, slope=slopes)
        g, g_slope = self.activate(2, gg, slope=slopes)
        c_new = f * c + i * g
        if peep is not None:
            go = go + peep[2] * c_new
        o, o_slope = self.activate(1, go, slope=slopes)
        a, a_slope = self.activate(0, c_new, clip=False, slope=slopes)
        return {"c": c, "i": i, "i_slope": i_slope, "f": f, "f_slope": f_slope, "g": g,
                "g_slope": g_slope, "c_new": c_new, "o": o, "o_slope": o_slope, "a": a,
                "a_slope": a_slope}

    def bounds(self):
        """h = o f_a(c) with o in (0, 1): within the range of f_a and 0 (unbounded with a
        projection R); c is unbounded."""
        q, p = self.layer.hidden_size, self.layer.units
        low, high = activation_range(self.layer.activations[0])
        if self.weight("R") is not None:
            low, high = -np.inf, np.inf
        return (np.concatenate([np.full(q, min(low, 0.0)), np.full(p, -np.inf)]),
                np.concatenate([np.full(q, max(high, 0.0)), np.full(p, np.inf)]))

    def __call__(self, s, d):
        v = self._forward(s, d, slopes=False)
        h_new = v["o"] * v["a"]
        if self.weight("R") is not None:
            h_new = h_new @ self.weight("R").T
        return np.concatenate([h_new, v["c_new"]], axis=-1)

    def jvp(self, s, d, v):
        q, p = self.layer.hidden_size, self.layer.units
        w = self._forward(s, d)
        u, peep = self.weight("U"), self.weight("P")
        vh, vc = v[..., :q, :], v[..., q:, :]
        dz = u @ vh
        di = dz[..., :p, :]
        df = dz[..., p:2 * p, :]
        if peep is not None:
            di = di + rows(peep[0], vc)
            df = df + rows(peep[1], vc)
        if self.layer.options.input_forget:
            df = di
        dc = (rows(w["f_slope"] * w["c"], df) + rows(w["f"], vc)
              + rows(w["i_slope"] * w["g"], di) + rows(w["i"] * w["g_slope"],
                                                         dz[..., 2 * p:3 * p, :]))
        do = dz[..., 3 * p:, :]
        if peep is not None:
            do = do + rows(peep[2], dc)
        dy = rows(w["o_slope"] * w["a"], do) + rows(w["o"] * w["a_slope"], dc)
        if self.weight("R") is not None:
            dy = self.weight("R") @ dy
        return np.concatenate([dy, dc], axis=-2)


class LSTMOptions(GateOptions, ClipOptions):
    """The lstm cell's own layer keys."""

    cell_activation: Optional[Spec] = Field(default=None, description="the cell input g's "
                                            "activation (default tanh)")
    proj_size: Optional[int] = Field(default=None, ge=0, description="project h_t to this "
                                     "width (0: none)")
    peepholes: Optional[bool] = Field(default=None, description="gates see the cell state")
    input_forget: Optional[bool] = Field(default=None, description="couple the forget gate, "
                                         "f = 1 - i (ONNX)")


class LSTMCell(Cell):
    """Gates i, f, g, o (PyTorch order); c_t = f c_{t-1} + i g, h_t = o f_h(c_t)."""

    name = "lstm"
    template = "lstm"
    cuda_template = "lstm"
    gate_labels = "ifgo"
    equation = ("[i f g o]_t = W x_t + U h_{t-1} + b (+ peepholes P c), i f o -> f_gate, "
                "g -> f_cell; c_t = f c_{t-1} + i g; h_t = o f_a(c_t) (then R h_t with proj_size)")
    symbols = {"W": "W_ifgo", "U": "U_ifgo", "b": "b_ifgo", "P": "P_ifo", "R": "W_hr"}
    activation_slots = {"activation": "tanh", "gate_activation": "sigmoid",
                        "cell_activation": "tanh"}
    Options = LSTMOptions
    map_class = LSTMMap

    @property
    def hidden_size(self) -> int:
        return self.options.proj_size or self.units

    def state_sizes(self) -> dict[str, int]:
        return {"h": self.hidden_size, "c": self.units}

    def parameter_shapes(self):
        p, q = self.units, self.hidden_size
        shapes = {}
        for suffix in self.suffixes:
            shapes.update(self.gate_shapes(suffix))
            if self.options.peepholes:
                shapes["P" + suffix] = ("bias", (3, p))
            if self.options.proj_size:
                shapes["R" + suffix] = ("input", (q, p))
        return shapes

    def forward_call(self, params, suffix, x, lengths, reverse, out, h, c):
        from ..kernels.cpu import lstm as template, tiles  # numba, on first run

        B, k = x.shape[1:]
        p, q, dtype, gates = self.units, self.hidden_size, x.dtype, template.GATES
        vectors = gates * template.HALVES
        units = tiles.panel_units(dtype, gates, vectors)
        P = self.packed("U" + suffix, (params["W" + suffix], params["U" + suffix]), gates,
                        vectors)
        if self.options.proj_size:
            R = params["R" + suffix]
            R = self.packed("R" + suffix, (R[:, :0], R), 1, template.PROJECTION_HALVES)
        else:  # no panels: nothing to pack or compare
            R = np.zeros(tiles.packed_shape(0, p, 1, template.PROJECTION_HALVES, dtype), dtype)
        bias = tiles.padded(params.get("b" + suffix, np.zeros(gates * p, dtype)), gates, units)
        peep = tiles.padded(params.get("P" + suffix, np.zeros(3 * p, dtype)).reshape(-1), 3,
                            units)
        padded = bias.shape[1]
        width = q if self.options.proj_size else padded
        buffers = (np.zeros((B, k + width), dtype), np.zeros((B, k + width), dtype),
                   np.zeros((B, padded), dtype),
                   np.zeros((B if self.options.proj_size else 0, padded), dtype))
        step_work = B * (gates * p * P.shape[1] + (q * p if self.options.proj_size else 0))
        module = self.kernels()  # one row runs its own loop, compiled only where it runs
        kernel = module.lstm_row_serial if B == 1 and not self.options.proj_size else \
            module.lstm_forward_serial
        return (kernel, step_work,
                (x, P, bias, R, np.zeros((1, R.shape[0] * R.shape[2]), dtype), peep, h, c, out,
                 lengths, reverse, self.clip(dtype), bool(self.options.input_forget), *buffers,
                 *(a.kernel_args(dtype) for a in self.activations)))

    def square(self, block, params, suffix):
        r = params.get("R" + suffix)
        return block if r is None else block @ np.asarray(r, np.float64)

    def cuda_row_values(self) -> int:
        return self.hidden_size + (self.units if self.options.proj_size else 0)

    def run_cuda(self, run, params, suffix, h, c):
        p, q = self.units, self.hidden_size
        per_block = run.plan.units_per_block(p)
        outputs_per_block = -(-q // run.plan.unit_blocks)
        projected = "R" + suffix in params
        stage, shared = run.stage(4 * q * per_block)
        Ut = run.weights("U" + suffix, (params["U" + suffix],), lambda U: device.transposed(U, 4))
        P = run.weights("P" + suffix, (params.get("P" + suffix, np.zeros((3, p))),))
        Rt = run.weights("R" + suffix, (params.get("R" + suffix, np.zeros((q, 0))),),
                         lambda R: R.T)
        h_dev, c_dev = run.upload(h), run.upload(c)
        y = run.cuda.device_array((h.shape[0], p) if projected else (0, p), run.dtype)
        clip = self.clip(run.dtype)
        input_forget = bool(self.options.input_forget)
        out = run.recur(params, suffix, q, "lstm_forward", shared,
                        lambda xp, out, lengths, steps: (xp, Ut, P, Rt, h_dev, c_dev, out, y,
                                                         lengths, steps, run.reverse, clip,
                                                         input_forget, per_block,
                                                         outputs_per_block, stage, *run.args))
        h_dev.copy_to_host(h)
        c_dev.copy_to_host(c)
        return out
