"""The hooks a plugin implements. Each receives a ``register`` callback from the host."""
from typing import Callable

import pluggy

hookspec = pluggy.HookspecMarker("rnnsim")
hookimpl = pluggy.HookimplMarker("rnnsim")


@hookspec
def register_activations(register: Callable) -> None:
    """Register scalar activation functions usable inside the numba kernels.

    register : ``register(name, fn, params=None, description="", fast=None, vectorised=None)``
        ``fn(x, *params)`` is a plain scalar function in numba's nopython subset (``math``
        functions, arithmetic, comparisons); the host compiles and inlines it into every
        kernel. ``params`` maps each extra argument's name to its default, in the order
        ``fn`` takes them (``{"alpha": 0.01}``); configs may override them by name.
        ``fast`` is an optional approximation of ``fn`` with the same arguments, used by
        the CPU kernels when the network's ``fast_math`` option is on; document its error.
        ``vectorised`` is an optional form of ``fn`` that is at least as accurate and
        vectorises (branch-free arithmetic, no libm calls); the CPU kernels use it otherwise.
        Each of ``fn``, ``fast`` and ``vectorised`` may be a reference
        ``"package.module:function"`` instead, imported when a kernel first needs it, so that
        a module that imports numba costs nothing to `rnnsim --help` or `rnnsim validate`.

    Returns nothing; registering a name twice is an error naming both plugins.
    """


@hookspec
def register_initializers(register: Callable) -> None:
    """Register weight initializers.

    register : ``register(name, fn, description="")``
        ``fn(shape, rng, dtype, **params)`` returns a new array of ``shape`` and ``dtype``,
        drawing only from ``rng`` (a ``numpy.random.Generator``), so that results are
        deterministic for a seed. For a matrix, ``shape`` is ``(fan_out, fan_in)``.

    Returns nothing; registering a name twice is an error naming both plugins.
    """


@hookspec
def register_heads(register: Callable) -> None:
    """Register output heads that map the top layer's states to ``y``.

    register : ``register(name, cls, description="")``
        ``cls`` subclasses ``rnnsim.Head``: built as ``cls(in_features, units, activation)``,
        it declares its parameters with ``parameter_shapes()`` and computes
        ``forward(params, states)`` from states of shape ``(T, B, in_features)``.

    Returns nothing; registering a name twice is an error naming both plugins.
    """


@hookspec
def register_cells(register: Callable) -> None:
    """Register recurrent cells, selected in configs by ``cell: <name>``.

    register : ``register(cls, description="")``
        ``cls`` subclasses ``rnnsim.Cell`` and owns everything about the cell: its ``name``,
        parameter names and shapes (``parameter_shapes()``), its own layer keys (``Options``,
        a ``config.CellOptions`` schema), its activation slots, gate labels, its CPU kernel
        (``run_direction``), and optionally its GPU kernel (``cuda_template``, ``run_cuda``)
        and dynamics map (``map_class``). Built as
        ``cls(layer_config, input_size, activations, where)``.

    Returns nothing; registering a name twice is an error naming both plugins.
    """


@hookspec
def register_metrics(register: Callable) -> None:
    """Register sweep metrics, named in ``sweep.metrics`` and ``rnnsim sweep --metric``.

    register : ``register(name, fn, description="")``
        ``fn(net, seed) -> float`` computes one number for one point of a sweep: ``net`` is
        the point's ``Network``, ``seed`` the point's seed for any random input it draws.
        Define ``fn`` at module level, so that sweep worker processes can import it.

    Returns nothing; registering a name twice is an error naming both plugins.
    """


@hookspec
def register_importers(register: Callable) -> None:
    """Register importers of other frameworks' model files, named in `rnnsim import FORMAT`
    and picked by file type in `rnnsim run FILE`, `rnnsim info FILE` and
    ``rnnsim.import_file``.

    register : ``register(name, load, suffixes=(), description="", options=None, sniff=None)``
        ``load(path, **options)`` reads the file and returns an ``rnnsim.Network``, or a graph
        model with ``run(feeds) -> dict`` and ``describe() -> dict`` that runs as it is; it
        raises ``rnnsim.InputError``/``ConfigError`` for a file it cannot import, and imports
        its framework inside the call (saying how to install it when it is missing).
        ``suffixes`` are the file name endings it reads ('.keras', '.weights.h5'); the longest
        matching ending picks the importer. ``sniff(path) -> bool`` optionally recognises a
        file by its content when no suffix matches. ``options`` maps each keyword of ``load``
        to ``{"help": str, "type": "str"|"int"|"float"|"bool"|"path", "choices": [...],
        "default": value, "required": bool}``; each becomes ``--name`` on
        `rnnsim import FORMAT`.

    Returns nothing; registering a name twice is an error naming both plugins.
    """
