"""Built-in activations. Formulas and default parameters follow the ONNX operator spec.

Each is a plain scalar function in numba's subset; the host compiles it into the kernels.
"""
import math

import numpy as np

from ..hookspecs import hookimpl


def identity(x):
    return x


def tanh(x):
    return math.tanh(x)


def relu(x):
    return x if x > 0 else 0.0 * x


def sigmoid(x):
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def hard_sigmoid(x, alpha, beta):
    return max(0.0, min(1.0, alpha * x + beta))


def leaky_relu(x, alpha):
    return x if x >= 0 else alpha * x


def elu(x, alpha):
    return x if x >= 0 else alpha * (math.exp(x) - 1.0)


def selu(x, alpha, gamma):
    return gamma * x if x > 0 else gamma * (alpha * math.exp(x) - alpha)


def softsign(x):
    return x / (1.0 + abs(x))


def softplus(x):
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def scaled_tanh(x, alpha, beta):
    return alpha * math.tanh(beta * x)


def affine(x, alpha, beta):
    return alpha * x + beta


def thresholded_relu(x, alpha):
    return x if x > alpha else 0.0 * x


def gelu(x):
    return 0.5 * x * (1.0 + math.erf(x * 0.7071067811865476))


def silu(x):
    if x >= 0:
        return x / (1.0 + math.exp(-x))
    e = math.exp(x)
    return x * e / (1.0 + e)


def softmax(z):
    """Softmax over the last axis (a head activation: it mixes units)."""
    shifted = np.exp(z - z.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def log_softmax(z):
    """Log-softmax over the last axis (a head activation: it mixes units)."""
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


SCALAR = {
    "identity": (identity, {}, "f(x) = x"),
    "tanh": (tanh, {}, "hyperbolic tangent"),
    "relu": (relu, {}, "max(0, x)"),
    "sigmoid": (sigmoid, {}, "1 / (1 + exp(-x))"),
    "hard_sigmoid": (hard_sigmoid, {"alpha": 0.2, "beta": 0.5}, "max(0, min(1, alpha*x + beta))"),
    "leaky_relu": (leaky_relu, {"alpha": 0.01}, "x if x >= 0 else alpha*x"),
    "elu": (elu, {"alpha": 1.0}, "x if x >= 0 else alpha*(exp(x) - 1)"),
    "selu": (
        selu,
        {"alpha": 1.67326319217681884765625, "gamma": 1.05070102214813232421875},
        "gamma*x if x > 0 else gamma*alpha*(exp(x) - 1)",
    ),
    "softsign": (softsign, {}, "x / (1 + |x|)"),
    "softplus": (softplus, {}, "log(1 + exp(x))"),
    "scaled_tanh": (scaled_tanh, {"alpha": 1.0, "beta": 1.0}, "alpha*tanh(beta*x)"),
    "affine": (affine, {"alpha": 1.0, "beta": 0.0}, "alpha*x + beta"),
    "thresholded_relu": (thresholded_relu, {"alpha": 1.0}, "x if x > alpha else 0"),
    "gelu": (gelu, {}, "0.5*x*(1 + erf(x/sqrt(2)))"),
    "silu": (silu, {}, "x * sigmoid(x)"),
}

# Approximations used with network.fast_math, and forms as accurate as libm that vectorise
# in float32, used by the CPU kernels otherwise; their errors: rnnsim.kernels.cpu.approx.
# References, imported (with numba) when a kernel first needs them.
APPROX = "rnnsim.kernels.cpu.approx"
FAST = {"tanh": f"{APPROX}:tanh", "sigmoid": f"{APPROX}:sigmoid"}
VECTORISED = {"tanh": f"{APPROX}:precise_tanh", "sigmoid": f"{APPROX}:precise_sigmoid"}


@hookimpl
def register_activations(register):
    for name, (fn, params, description) in SCALAR.items():
        register(name, fn, params=params, description=description, fast=FAST.get(name),
                 vectorised=VECTORISED.get(name))
    register("softmax", softmax, description="exp(z_i) / sum_j exp(z_j), heads only",
             elementwise=False)
    register("log_softmax", log_softmax, description="log of softmax, heads only",
             elementwise=False)
