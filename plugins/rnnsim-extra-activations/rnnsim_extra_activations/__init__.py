"""Extra activations for rnnsim, registered through the ``register_activations`` hook."""
import math

import rnnsim


def penalized_tanh(x, a):
    """tanh(x) for x > 0, a*tanh(x) otherwise (Xu et al. 2016)."""
    t = math.tanh(x)
    return t if x > 0 else a * t


def mish(x):
    """x * tanh(softplus(x)) (Misra 2019)."""
    softplus = max(x, 0.0) + math.log1p(math.exp(-abs(x)))
    return x * math.tanh(softplus)


def rectified_tanh(x, alpha, beta):
    """max(0, alpha * tanh(beta * x))."""
    return max(0.0, alpha * math.tanh(beta * x))


@rnnsim.hookimpl
def register_activations(register):
    register("penalized_tanh", penalized_tanh, params={"a": 0.25},
             description="tanh(x) if x > 0 else a*tanh(x)")
    register("mish", mish, description="x * tanh(softplus(x))")
    register("rectified_tanh", rectified_tanh, params={"alpha": 1.0, "beta": 1.0},
             description="max(0, alpha*tanh(beta*x))")
