"""Sparse matrices in compressed sparse row form and spectral radii of dense or sparse ones.

A low-level module below the cells: an esn layer keeps its recurrent weights here, stored in
``Network.params`` as ``<name>.data``, ``<name>.indices`` and ``<name>.indptr``; no function
here forms a dense N x N matrix from them unless N is small (``DENSE_EIG_MAX``, or
``DENSE_FALLBACK_MAX`` when a Krylov method cannot settle a spectral radius).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .errors import ConfigError, ShapeError

CSR_PARTS = ("data", "indices", "indptr")
# Up to this size a sparse matrix's spectral radius comes from a dense eigvals, above it from
# a sparse eigensolver (ARPACK, or arnoldi_radius without scipy).
DENSE_EIG_MAX = 256
# Above DENSE_EIG_MAX: the eigenvalues of largest modulus asked of the Krylov method, the size of
# its space (both widened when two starts disagree), the relative tolerance they must agree to,
# the largest matrix that falls back to a dense eigvals when they never agree, and the
# restarts allowed to one Krylov run.
RADIUS_EIGENVALUES = 8
RADIUS_KRYLOV = 48
RADIUS_RTOL = 1e-8
DENSE_FALLBACK_MAX = 4096
RADIUS_RESTARTS = 300
INSTALL_HINT = "install it with `pip install 'rnnsim[reservoir]'` (or `pip install scipy`)"


@dataclass(frozen=True)
class CSR:
    """A sparse matrix in compressed sparse row form.

    data : (nnz,) float32|float64; indices : (nnz,) int32 column of each value;
    indptr : (rows + 1,) int32, row i's values are ``data[indptr[i]:indptr[i+1]]``.
    """

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    shape: tuple[int, int]

    @classmethod
    def from_rows(cls, rows: Sequence[np.ndarray], values: Sequence[np.ndarray],
                  shape: tuple[int, int], dtype) -> "CSR":
        """Build from the column indices and values of each row (sorted per row here)."""
        counts = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        indptr = np.zeros(len(rows) + 1, dtype=np.int32)
        np.cumsum(counts, out=indptr[1:])
        indices = np.concatenate(rows).astype(np.int32) if rows else np.zeros(0, np.int32)
        data = np.concatenate(values).astype(dtype) if rows else np.zeros(0, dtype)
        order = np.lexsort((indices, np.repeat(np.arange(len(rows)), counts)))
        return cls(data[order], indices[order], indptr, tuple(shape))

    @classmethod
    def from_dense(cls, a: np.ndarray) -> "CSR":
        """The nonzeros of a dense matrix."""
        rows, cols = np.nonzero(a)
        indptr = np.zeros(a.shape[0] + 1, dtype=np.int32)
        np.cumsum(np.bincount(rows, minlength=a.shape[0]), out=indptr[1:])
        return cls(np.ascontiguousarray(a[rows, cols]), cols.astype(np.int32), indptr, a.shape)

    @classmethod
    def from_params(cls, params: Mapping[str, np.ndarray], name: str,
                    shape: tuple[int, int]) -> "CSR":
        """The matrix stored as ``name.data/.indices/.indptr`` in ``params``, validated."""
        parts = [np.asarray(params[f"{name}.{part}"]) for part in CSR_PARTS]
        data, indices, indptr = parts
        rows, cols = shape
        problems = []
        if any(p.ndim != 1 for p in parts):
            problems.append("every part must be 1-D")
        elif indptr.shape != (rows + 1,) or data.shape != indices.shape:
            problems.append(f"indptr must have {rows + 1} entries and data/indices equal "
                            f"lengths, got {indptr.shape}, {data.shape}, {indices.shape}")
        elif indices.dtype.kind not in "iu" or indptr.dtype.kind not in "iu":
            problems.append("indices and indptr must be integers")
        elif (indptr[0] != 0 or indptr[-1] != data.size or np.any(np.diff(indptr) < 0)
              or (indices.size and (indices.min() < 0 or indices.max() >= cols))):
            problems.append(f"indptr must rise from 0 to nnz and indices lie in [0, {cols})")
        if problems:
            raise ShapeError(f"sparse parameter '{name}' ({rows} x {cols}): "
                             f"{'; '.join(problems)}. Save it with Network.save.")
        return cls(data, indices.astype(np.int32, copy=False),
                   indptr.astype(np.int32, copy=False), (rows, cols))

    @property
    def nnz(self) -> int:
        return int(self.data.size)

    def astype(self, dtype) -> "CSR":
        return CSR(np.ascontiguousarray(self.data, dtype=dtype), self.indices, self.indptr,
                   self.shape)

    def scaled(self, factor: float) -> "CSR":
        return CSR((self.data * factor).astype(self.data.dtype), self.indices, self.indptr,
                   self.shape)

    def params(self, name: str) -> dict[str, np.ndarray]:
        """The three arrays under their ``Network.params`` names."""
        return {f"{name}.{part}": getattr(self, part) for part in CSR_PARTS}

    def dot(self, v: np.ndarray) -> np.ndarray:
        """``self @ v`` for ``v`` (columns,) or (..., columns, m), in the dtype the values and
        ``v`` promote to; never forms the dense matrix. Empty rows give zeros."""
        v = np.asarray(v)
        moved = v if v.ndim == 1 else np.moveaxis(v, -2, 0)
        products = self.data.reshape((-1,) + (1,) * (moved.ndim - 1)) * moved[self.indices]
        out = np.zeros((self.shape[0],) + moved.shape[1:], products.dtype)
        filled = np.diff(self.indptr) > 0
        if filled.any():
            out[filled] = np.add.reduceat(products, self.indptr[:-1][filled], axis=0)
        return out if v.ndim == 1 else np.moveaxis(out, 0, -2)

    def to_dense(self) -> np.ndarray:
        """A dense copy: for small matrices only."""
        out = np.zeros(self.shape, dtype=self.data.dtype)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        out[rows, self.indices] = self.data
        return out

    def to_scipy(self):
        """A ``scipy.sparse.csr_array`` sharing the arrays."""
        sparse = _scipy("sparse")
        return sparse.csr_array((self.data, self.indices, self.indptr), shape=self.shape)


def _scipy(module: str):
    try:
        return __import__(f"scipy.{module}", fromlist=["_"])
    except ImportError:
        raise ConfigError(f"sparse reservoirs need scipy.{module}, which is not installed; "
                          f"{INSTALL_HINT}.") from None


def spectral_radius(w, leak_rate=None, *, dense_max: int = DENSE_EIG_MAX) -> float:
    """The largest |eigenvalue| of ``w`` (dense or CSR), or of ``lr*w + (1-lr)*I`` with a leak.

    A dense matrix, and a CSR one of at most ``dense_max`` rows, goes through a dense
    ``eigvals`` (exact, and faster than a Krylov method at that size). A larger CSR matrix
    goes through a Krylov method (ARPACK's ``eigs`` with the ``reservoir`` extra, else
    :func:`arnoldi_radius`) asking for the ``RADIUS_EIGENVALUES`` eigenvalues of largest
    modulus, from two start vectors: the radius is accepted when both agree to ``RADIUS_RTOL``
    (relative). Otherwise the Krylov space is widened, and a matrix of at most
    ``DENSE_FALLBACK_MAX`` rows falls back to a dense ``eigvals`` (cycles and orthogonal
    matrices, whose eigenvalues all share one modulus, stall Krylov methods). ``leak_rate``
    is a scalar or one value per row.
    """
    n = w.shape[0]
    if w.shape != (n, n):
        raise ShapeError(f"a spectral radius needs a square matrix; got shape {w.shape}.")
    lr = None if leak_rate is None else np.broadcast_to(np.asarray(leak_rate, np.float64), (n,))
    if not isinstance(w, CSR) or n <= dense_max:
        return _dense_radius(w, lr)
    radius = _krylov_radius(w.astype(np.float64), lr)
    if radius is not None:
        return radius
    if n <= DENSE_FALLBACK_MAX:
        return _dense_radius(w, lr)
    raise ConfigError(f"no spectral radius found for the {n} x {n} sparse matrix: the Krylov "
                      f"method did not settle to {RADIUS_RTOL:g} from two starts (several "
                      "eigenvalues of equal modulus, as in a cycle?) and the matrix is too "
                      f"large (> {DENSE_FALLBACK_MAX} rows) for a dense eigvals. Scale the "
                      "initializer's weight directly instead.")


def _dense_radius(w, lr) -> float:
    a = (w.to_dense() if isinstance(w, CSR) else np.asarray(w)).astype(np.float64)
    if lr is not None:
        a = lr[:, None] * a + np.diag(1.0 - lr)
    return float(np.max(np.abs(np.linalg.eigvals(a)))) if a.size else 0.0


def _krylov_radius(w: CSR, lr) -> float | None:
    """The radius two Krylov runs from different starts agree on, or None. The space is
    widened (twice at most) when both runs converge but disagree; a run that does not
    converge ends the search for a matrix that a dense eigvals can take."""
    n = w.shape[0]
    try:
        linalg = __import__("scipy.sparse.linalg", fromlist=["_"])
    except ImportError:
        linalg = None
    if linalg is None:
        operator = _leaky_matvec(w, lr)
    else:
        operator = w.to_scipy()
        if lr is not None:
            diagonal = __import__("scipy.sparse", fromlist=["_"]).diags_array(1.0 - lr)
            operator = (operator.multiply(lr[:, None]) + diagonal).tocsr()
    starts = (np.full(n, 1.0 / math.sqrt(n)), np.random.default_rng(0).standard_normal(n))
    for widen in (1, 2, 4):
        krylov = min(n - 1, RADIUS_KRYLOV * widen)
        count = min(RADIUS_EIGENVALUES * widen, krylov - 2)
        if linalg is None:
            radii = [arnoldi_radius(operator, n, krylov, start=start) for start in starts]
        else:
            radii = [_arpack_radius(linalg, operator, count, krylov, start) for start in starts]
        if None not in radii and abs(radii[0] - radii[1]) <= RADIUS_RTOL * max(radii):
            return max(radii)
        if None in radii and n <= DENSE_FALLBACK_MAX:
            return None
    return None


def _leaky_matvec(w: CSR, lr):
    """x -> (lr * w + (1 - lr) I) x (x -> w x without a leak), in float64, without scipy."""

    def matvec(x):
        wx = w.dot(x)
        return wx if lr is None else lr * wx + (1.0 - lr) * x

    return matvec


def _arpack_radius(linalg, a, count: int, krylov: int, start) -> float | None:
    try:
        # Several eigenvalues in a wide space: asked for one, ARPACK settles on a large
        # eigenvalue that is not the largest when many lie near the spectral circle (random
        # reservoirs: 3 in 100 off by up to 2e-3 at N = 500).
        values = linalg.eigs(a, k=count, which="LM", v0=start, ncv=krylov,
                             tol=RADIUS_RTOL / 10, maxiter=RADIUS_RESTARTS,
                             return_eigenvectors=False)
    except linalg.ArpackNoConvergence:
        return None
    return float(np.max(np.abs(values)))


def arnoldi_radius(matvec, n: int, krylov: int = RADIUS_KRYLOV, tol: float = RADIUS_RTOL / 10,
                   restarts: int = RADIUS_RESTARTS, start=None) -> float | None:
    """The largest |eigenvalue| of the linear map ``matvec`` on R^n, by restarted Arnoldi.

    Builds a Krylov basis of ``krylov`` vectors (Gram-Schmidt twice) from ``start`` (default:
    all ones), takes the Ritz value of largest modulus and restarts from the real and
    imaginary parts of its Ritz vector until its residual is below ``tol`` times its modulus.
    None if ``restarts`` cycles do not reach that. The fallback of :func:`spectral_radius`
    without scipy.
    """
    m = min(krylov, n)
    start = np.full(n, 1.0 / math.sqrt(n)) if start is None else np.asarray(start, np.float64)
    for _ in range(restarts):
        basis, hessenberg = np.zeros((m + 1, n)), np.zeros((m + 1, m))
        basis[0] = start / np.linalg.norm(start)
        size = m
        for j in range(m):
            v = matvec(basis[j])
            for _ in range(2):
                coefficients = basis[:j + 1] @ v
                v -= coefficients @ basis[:j + 1]
                hessenberg[:j + 1, j] += coefficients
            hessenberg[j + 1, j] = np.linalg.norm(v)
            if hessenberg[j + 1, j] <= 1e-12 * np.abs(hessenberg[:j + 2, j]).max(initial=0.0):
                size = j + 1  # an invariant subspace: its Ritz values are eigenvalues
                break
            basis[j + 1] = v / hessenberg[j + 1, j]
        values, vectors = np.linalg.eig(hessenberg[:size, :size])
        top = int(np.argmax(np.abs(values)))
        radius = float(abs(values[top]))
        residual = hessenberg[size, size - 1] * abs(vectors[size - 1, top])
        if size < m or residual <= tol * radius:
            return radius
        ritz = vectors[:, top] @ basis[:size]
        start = ritz.real + ritz.imag
    return None


def scale_spectral_radius(w, radius: float, where: str):
    """``w`` (dense or CSR) rescaled to spectral radius ``radius``; errors name ``where``."""
    if len(w.shape) != 2 or w.shape[0] != w.shape[1]:
        raise ConfigError(f"{where}.spectral_radius: only square (recurrent) matrices have a "
                          f"spectral radius; this parameter has shape {tuple(w.shape)}.")
    current = spectral_radius(w)
    if current == 0.0:
        raise ConfigError(f"{where}.spectral_radius: the drawn matrix has spectral radius 0 "
                          "(nilpotent, e.g. a delay line) and cannot be rescaled; scale its "
                          "weight instead or use another initializer.")
    factor = float(radius) / current
    return w.scaled(factor) if isinstance(w, CSR) else (w * factor).astype(w.dtype)
