"""Built-in initializers. Each draws only from the ``rng`` it is given, so a seed fixes it.

A matrix has shape ``(fan_out, fan_in)``; a vector ``(n,)`` has fan_in = fan_out = n.
"""
import math

import numpy as np

from ..hookspecs import hookimpl


def _fans(shape):
    if len(shape) == 1:
        return shape[0], shape[0]
    return shape[1], shape[0]


def zeros(shape, rng, dtype):
    return np.zeros(shape, dtype=dtype)


def ones(shape, rng, dtype):
    return np.ones(shape, dtype=dtype)


def constant(shape, rng, dtype, value=0.0):
    return np.full(shape, value, dtype=dtype)


def uniform(shape, rng, dtype, low=-0.05, high=0.05):
    return rng.uniform(low, high, size=shape).astype(dtype)


def normal(shape, rng, dtype, mean=0.0, std=1.0):
    return rng.normal(mean, std, size=shape).astype(dtype)


def xavier_uniform(shape, rng, dtype, gain=1.0):
    fan_in, fan_out = _fans(shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(shape, rng, dtype, -bound, bound)


def xavier_normal(shape, rng, dtype, gain=1.0):
    fan_in, fan_out = _fans(shape)
    return normal(shape, rng, dtype, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform(shape, rng, dtype, gain=math.sqrt(2.0), mode="fan_in"):
    fan = dict(zip(("fan_in", "fan_out"), _fans(shape)))[mode]
    bound = gain * math.sqrt(3.0 / fan)
    return uniform(shape, rng, dtype, -bound, bound)


def kaiming_normal(shape, rng, dtype, gain=math.sqrt(2.0), mode="fan_in"):
    fan = dict(zip(("fan_in", "fan_out"), _fans(shape)))[mode]
    return normal(shape, rng, dtype, 0.0, gain / math.sqrt(fan))


def orthogonal(shape, rng, dtype, gain=1.0):
    """A (semi-)orthogonal matrix from the QR decomposition of a Gaussian one."""
    rows = shape[0]
    cols = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    a = rng.normal(size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return (gain * q).reshape(shape).astype(dtype)


def torch_default(shape, rng, dtype):
    """PyTorch's recurrent-layer default: U(-1/sqrt(n), 1/sqrt(n)), n = shape[0] (units)."""
    bound = 1.0 / math.sqrt(shape[0])
    return uniform(shape, rng, dtype, -bound, bound)


def sparse(shape, rng, dtype, connectivity=0.1, std=1.0):
    """Normal values at a random ``connectivity`` fraction of entries, zeros elsewhere."""
    mask = rng.random(shape) < connectivity
    return np.where(mask, rng.normal(0.0, std, size=shape), 0.0).astype(dtype)


def bernoulli(shape, rng, dtype, value=1.0, p=0.5):
    """Entries +value with probability p, -value otherwise."""
    return np.where(rng.random(shape) < p, value, -value).astype(dtype)


INITIALIZERS = {
    "zeros": (zeros, "all zeros"),
    "ones": (ones, "all ones"),
    "constant": (constant, "every entry = value"),
    "uniform": (uniform, "U(low, high)"),
    "normal": (normal, "N(mean, std^2)"),
    "xavier_uniform": (xavier_uniform, "Glorot: U(±gain*sqrt(6/(fan_in+fan_out)))"),
    "xavier_normal": (xavier_normal, "Glorot: N(0, gain^2 * 2/(fan_in+fan_out))"),
    "kaiming_uniform": (kaiming_uniform, "He: U(±gain*sqrt(3/fan))"),
    "kaiming_normal": (kaiming_normal, "He: N(0, gain^2/fan)"),
    "orthogonal": (orthogonal, "(semi-)orthogonal times gain"),
    "torch_default": (torch_default, "U(±1/sqrt(units)), PyTorch's RNN default"),
    "sparse": (sparse, "N(0, std^2) at a connectivity fraction of entries"),
    "bernoulli": (bernoulli, "±value with probability p / 1-p"),
}
ALIASES = {
    "glorot_uniform": "xavier_uniform",
    "glorot_normal": "xavier_normal",
    "he_uniform": "kaiming_uniform",
    "he_normal": "kaiming_normal",
}


@hookimpl
def register_initializers(register):
    for name, (fn, description) in INITIALIZERS.items():
        register(name, fn, description=description)
    for alias, name in ALIASES.items():
        register(alias, INITIALIZERS[name][0], description=f"alias of {name}")
