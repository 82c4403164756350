"""The echo-state (leaky-integrator reservoir) cell, with dense or sparse (CSR) recurrent weights."""
from __future__ import annotations

import zlib

import numpy as np

from ..activations import compile_errors
from ..errors import ConfigError
from ..reservoir import CSR
from .base import Cell, input_projection, pick_variant


class ESNCell(Cell):
    """x_t = (1 - lr) x_{t-1} + lr f(W x_{t-1} + W_in (s * u_t) + b + noise * xi_t).

    ``lr`` (``leak_rate``) is a scalar or one value per unit, ``s`` (``input_scaling``) a
    scalar or one value per feature, ``xi_t`` standard normal, seeded by ``noise_seed``.
    With ``sparse: true`` W is stored and run in CSR form and never made dense.
    """

    name = "esn"
    template = "esn"
    equation = "x_t = (1-lr) x_{t-1} + lr f(W x_{t-1} + W_in (s*u_t) + b)"
    symbols = {"Win": "W_in", "W": "W", "b": "b"}
    options = ("leak_rate", "input_scaling", "noise", "noise_seed", "sparse")

    def __init__(self, config, input_size, activations, where="layer"):
        super().__init__(config, input_size, activations, where)
        problems = []
        if config.bidirectional:
            problems.append(f"{where}.bidirectional: an esn layer runs forward only; remove it.")
        lr = np.asarray(1.0 if config.leak_rate is None else config.leak_rate, np.float64)
        if lr.ndim and lr.shape != (self.units,):
            problems.append(f"{where}.leak_rate: give one value or one per unit ({self.units}), "
                            f"got {lr.size}.")
        elif np.any(lr <= 0) or np.any(lr > 1):
            problems.append(f"{where}.leak_rate: every value must lie in (0, 1].")
        scale = np.asarray(1.0 if config.input_scaling is None else config.input_scaling)
        if scale.ndim and scale.shape != (input_size,):
            problems.append(f"{where}.input_scaling: give one value or one per input feature "
                            f"({input_size}), got {scale.size}.")
        if config.noise is not None and config.noise < 0:
            problems.append(f"{where}.noise: the noise std must be >= 0.")
        if problems:
            raise ConfigError("\n".join(problems))
        self.sparse = bool(config.sparse)
        self.sparse_parameters = ("W",) if self.sparse else ()

    def parameter_shapes(self):
        N, k = self.units, self.input_size
        shapes = {"Win": ("input", (N, k)), "W": ("recurrent", (N, N))}
        if self.config.bias:
            shapes["b"] = ("bias", (N,))
        return shapes

    def leak_rate(self) -> np.ndarray:
        """lr for every unit: (N,) float64."""
        lr = 1.0 if self.config.leak_rate is None else self.config.leak_rate
        return np.broadcast_to(np.asarray(lr, np.float64), (self.units,))

    def recurrent_matrix(self, params: dict):
        """W as stored: a dense (N, N) array or a ``CSR``."""
        return CSR.from_params(params, "W", (self.units,) * 2) if self.sparse else params["W"]

    def _projection(self, params: dict, x: np.ndarray) -> np.ndarray:
        """W_in (s * u_t) + b + noise for all steps: (T, B, N), the kernel's in/out buffer."""
        if self.config.input_scaling is not None:
            x = x * np.asarray(self.config.input_scaling, dtype=x.dtype)
        z = input_projection(x, params["Win"], params.get("b"))
        if self.config.noise:
            rng = np.random.default_rng([self.config.noise_seed or 0, zlib.crc32(b"esn-noise")])
            for t in range(z.shape[0]):
                z[t] += (self.config.noise * rng.standard_normal(z.shape[1:])).astype(z.dtype)
        return z

    def run_direction(self, params, suffix, x, h, lengths, reverse):
        z = self._projection(params, x)
        self._run([self], [params], z, h, np.zeros(x.shape[1], np.int64), lengths)
        return z

    def run_members(self, members: list["ESNCell"], params: list[dict], u: np.ndarray):
        """Members' states on the shared input ``u`` (T, k), one batch row each: (T, M, N)."""
        x = u[:, None, :]
        z = np.stack([layer._projection(p, x)[:, 0] for layer, p in zip(members, params)], 1)
        h0 = np.zeros(z.shape[1:], z.dtype)
        with compile_errors(self.activations):
            self._run(members, params, z, h0, np.arange(len(members), dtype=np.int64),
                      np.full(len(members), len(u), np.int64))
        return z

    def _run(self, members, params, z, h, member, lengths):
        dtype = z.dtype
        lr = np.stack([layer.leak_rate() for layer in members]).astype(dtype)
        keep = (1.0 - np.stack([layer.leak_rate() for layer in members])).astype(dtype)
        module = self.kernels()
        act = self.activations[0].kernel_args(dtype)
        if self.sparse:
            mats = [layer.recurrent_matrix(p) for layer, p in zip(members, params)]
            offsets = np.cumsum([0] + [w.nnz for w in mats[:-1]])
            indptr = np.stack([w.indptr.astype(np.int64) + o for w, o in zip(mats, offsets)])
            data = np.concatenate([w.data for w in mats]).astype(dtype, copy=False)
            indices = np.concatenate([w.indices for w in mats])
            kernel = pick_variant(module, "esn_csr", z.shape[1])
            kernel(z, h, data, indices, indptr, lr, keep, member, lengths, act)
        else:
            W = np.stack([p["W"] for p in params]).astype(dtype, copy=False)
            kernel = pick_variant(module, "esn_dense", z.shape[1])
            kernel(z, h, W, lr, keep, member, lengths, act)
