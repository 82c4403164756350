"""Guards against runs that cannot end well: sizes beyond the memory, and NaN/inf states.

Both checks run before or right after the expensive part, so a hopeless request fails in
milliseconds with a message naming the array or layer, instead of allocating for minutes or
handing back NaN outputs.
"""
from __future__ import annotations

import inspect
import math
import os
import re
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import validation
from .errors import ConfigError, InputError, NonfiniteError, NonfiniteWarning, ShapeError
from .sparse import CSR

MEMORY_LIMIT_ENV = "RNNSIM_MEMORY_LIMIT"
NONFINITE_MODES = ("raise", "warn", "ignore")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
# Requests below this always pass without reading the machine's memory (three files in /proc
# and /sys: ~100 µs, more than a short run); RNNSIM_MEMORY_LIMIT still applies to them.
ALWAYS_FITS = 8 << 20
# A request under a quarter of what the machine had free at most RECENT seconds ago passes
# without reading it again (a run of a few MB then costs no /proc read, ~200 µs).
RECENT = 2.0
_last_room: tuple[float, int] = (-math.inf, 0)  # (time.monotonic(), bytes) of the last reading


def format_bytes(count: int) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if value < 1024 or unit == "EiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def parse_bytes(text: str) -> int:
    """``'512M'``, ``'4g'``, ``'1000000'`` -> bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", text.lower())
    if match is None:
        raise ConfigError(f"{MEMORY_LIMIT_ENV}={text!r}: give a size such as 512M, 4G or a "
                          "number of bytes.")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def available_bytes() -> int:
    """Memory a run may use: ``$RNNSIM_MEMORY_LIMIT`` if set, else what the machine (and its
    cgroup, in a container) has available now."""
    explicit = os.environ.get(MEMORY_LIMIT_ENV)
    if explicit:
        return parse_bytes(explicit)
    global _last_room
    room = _machine_room()
    _last_room = (time.monotonic(), room)
    return room


def _machine_room() -> int:
    """What the machine, its cgroup and this process's rlimits leave available now."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            found.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    found += _rlimit_room()
    if not found:
        try:
            found.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, ValueError, AttributeError):
            return 1 << 62
    return min(found)


def _rlimit_room() -> list[int]:
    """What ``ulimit -v`` (RLIMIT_AS) and ``ulimit -d`` (RLIMIT_DATA) leave this process:
    each limit less the address space (or data) it maps already."""
    try:
        import resource
    except ImportError:  # Windows
        return []
    mapped = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmSize", "VmData"):
                mapped[key] = int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    room = []
    for which, key in ((resource.RLIMIT_AS, "VmSize"), (resource.RLIMIT_DATA, "VmData")):
        soft = resource.getrlimit(which)[0]
        if soft != resource.RLIM_INFINITY:
            room.append(max(0, soft - mapped.get(key, 0)))
    return room


def check_fits(parts: dict[str, int], what: str, hint: str, error=ShapeError) -> None:
    """Raise ``error`` when the arrays in ``parts`` (name -> bytes) exceed the memory."""
    need = sum(parts.values())
    if not os.environ.get(MEMORY_LIMIT_ENV) and (
            need < ALWAYS_FITS or (need < _last_room[1] // 4
                                   and time.monotonic() - _last_room[0] < RECENT)):
        return
    have = available_bytes()
    if need <= have:
        return
    largest = sorted(parts.items(), key=lambda item: -item[1])[:3]
    listed = ", ".join(f"{name}: {format_bytes(size)}" for name, size in largest if size)
    raise error(f"{what} need about {format_bytes(need)} of memory ({listed}), more than the "
                f"{format_bytes(have)} available; nothing was allocated. {hint} (Set "
                f"{MEMORY_LIMIT_ENV} to change the limit.)")


def check_parameters(net) -> None:
    """Fail before drawing weights that cannot fit: ConfigError naming the largest ones."""
    item = net.dtype.itemsize
    sparse = {f"layers.{i}.{name}" for i, layer in enumerate(net.layers)
              for name in getattr(layer, "sparse_parameters", ())}
    parts, counts = {}, {}
    for name, (role, shape) in net.parameter_shapes().items():
        count = math.prod(shape)
        if name in sparse:  # values and column indices of the nonzeros
            count = math.ceil(count * _density(net, name, role))
            label = f"{name} {tuple(shape)} in CSR form"
            parts[label] = count * (item + 4)
        else:
            label = f"{name} {tuple(shape)}"
            parts[label] = count * item
        counts[label] = count
    if not parts:
        return
    biggest = max(parts, key=parts.get)
    owner = biggest.split(" ")[0].rsplit(".", 1)[0]
    if owner == "head":
        where = f"network.head.units = {net.head.units}"
    else:
        index = int(owner.split(".")[1])
        where = (f"network.layers[{index}].units = {net.layers[index].units}, "
                 f"input size {net.layers[index].input_size}")
    # Initializers draw in float64 before the cast: count the largest draw once more at 8 bytes.
    parts["float64 draw of the largest"] = counts[biggest] * 8
    check_fits(parts, f"the parameters ({where})",
               "Reduce units (p) or input_size (k): a layer's weights grow as p*(k + p); a "
               "sparse reservoir's as its connectivity times p*p.", ConfigError)


def _density(net, name: str, role: str) -> float:
    """The share of nonzeros a sparse parameter's initializer draws: its ``connectivity``
    (given, or its default), else 1 (an initializer without one may draw the dense matrix)."""
    spec, _ = net.init_spec(name, role)
    entry = net.plugins.initializers.entries.get(spec.name)
    density = spec.params.get("connectivity")
    if density is None and entry is not None:
        try:
            default = inspect.signature(entry.fn).parameters.get("connectivity")
        except (TypeError, ValueError):
            default = None
        density = None if default is None else default.default
    if isinstance(density, (int, float)) and 0 < density <= 1:
        return float(density)
    return 1.0


def run_buffer_bytes(net, timesteps: int, batch: int) -> dict[str, int]:
    """The arrays ``Network.run`` allocates for ``timesteps`` x ``batch``, by name."""
    item = net.dtype.itemsize
    rows = timesteps * batch * item
    parts = {f"input x ({timesteps}, {batch}, {net.input_size})": rows * net.input_size}
    worst, worst_name, width = 0, "layer buffers", net.input_size
    for i, layer in enumerate(net.layers):
        projection = max((shape[0] for name, (role, shape) in layer.parameter_shapes().items()
                          if role == "input" and len(shape) == 2 and "_" not in name),
                         default=layer.hidden_size)
        out = layer.directions * layer.hidden_size
        size = rows * (width + layer.directions * (projection + layer.hidden_size) + out)
        if size > worst:
            worst, worst_name = size, f"layer {i} ({layer.name}) buffers"
        width = out
    parts[worst_name] = worst
    if net.head is not None:
        parts[f"head output y ({timesteps}, {batch}, {net.head.units})"] = (
            2 * rows * net.head.units)
    return parts


def check_run(net, timesteps: int, batch: int) -> None:
    """Fail before a run whose buffers cannot fit: ShapeError naming the arrays."""
    check_fits(run_buffer_bytes(net, timesteps, batch),
               f"a run of T = {timesteps} steps and B = {batch} sequences",
               "Stream it to disk in chunks with run(x, out='out.npy') (`rnnsim run --output "
               "out.npy`), or run fewer steps or sequences at a time with the State API.")


def nonfinite_mode(nonfinite: str | None, check_finite: bool) -> str:
    """The mode in force: ``nonfinite``, or 'raise' ('ignore' when inputs may hold NaN/inf)."""
    if nonfinite is None:
        return "raise" if check_finite else "ignore"
    if nonfinite not in NONFINITE_MODES:
        raise InputError(f"nonfinite={nonfinite!r}: choose one of "
                         f"{', '.join(map(repr, NONFINITE_MODES))}.")
    return nonfinite


@dataclass(frozen=True)
class Fault:
    """Where a NaN/inf first appeared. ``step`` None: a single ``step`` call, or unknown."""

    what: str              # "layer 0 (elman) state h", "head 'linear' output y"
    value: float
    step: int | None
    row: int | None
    unit: int
    reverse: bool = False
    input_finite: bool | None = None  # whether x at that step and row is finite
    cause: str | None = None  # why, when known better than from the input alone

    def shifted(self, offset: int) -> "Fault":
        """The same fault with its step counted from ``offset`` (a chunk's first step)."""
        return self if self.step is None else replace(self, step=self.step + offset)

    def message(self) -> str:
        when = "at this step" if self.step is None else f"at step {self.step}"
        if self.step is not None and self.reverse:
            when += " (in the reverse direction, which runs from the last step back)"
        row = "" if self.row is None else f", batch row {self.row}"
        cause = ""
        if self.cause is not None:
            cause = f" {self.cause}"
        elif self.input_finite is True:
            cause = (" The input there is finite, so the recurrence diverged: scale the "
                     "weights down (spectral radius, gain), use a saturating activation or "
                     "clip.")
        elif self.input_finite is False:
            cause = " The input x there holds NaN/inf, which the states carried on."
        return (f"{self.what} became {self.value} {when}, unit {self.unit}{row}: the first "
                f"non-finite value in time order.{cause} Pass nonfinite='warn' or 'ignore' "
                "(rnnsim run --nonfinite) to keep going.")


class NonfiniteWatch:
    """Scans each layer's output after it runs and reports the first NaN/inf in time order.

    mode : 'raise', 'warn' or 'ignore'; x : the run's input (T, B, k)
    single_step : the run is one ``step`` call (no step index in the message)
    """

    def __init__(self, mode: str, x: np.ndarray, single_step: bool = False):
        self.mode = mode
        self.x = x
        self.single_step = single_step
        self.faults: list[tuple[tuple[int, int], Fault]] = []
        self.checked = 0
        # layer index -> (layer, its input, its parameters, its initial state, its output),
        # to tell a NaN made by an activation from a diverging recurrence
        self.context: dict[int, tuple] = {}
        self.located: dict[int, tuple[int, int]] = {}  # id(fault) -> (layer index, step)

    @property
    def active(self) -> bool:
        return self.mode != "ignore"

    def layer(self, layer_index: int, layer, output: np.ndarray, finals: dict, *,
              inputs: np.ndarray | None = None, params: dict | None = None,
              h0: np.ndarray | None = None) -> None:
        """Check a layer's output (T, B, D*H) and its other final states (name -> (D, B, W);
        the first, the output's, is checked at every step through the output).

        inputs (T, B, k), params (the layer's, by short name) and h0 (D, B, H), when given,
        let a fault be traced to an activation that returned NaN/inf for a finite value.
        """
        if not self.active:
            return
        if inputs is not None and params is not None and h0 is not None:
            self.context[layer_index] = (layer, inputs, params, h0, output)
        activations = ", ".join(a.name for a in layer.activations)
        what = f"layer {layer_index} ({layer.name}, activations {activations}) state h"
        H = output.shape[-1] // layer.directions
        for d in range(layer.directions):
            self._scan(output[..., d * H:(d + 1) * H], what, layer_index, reverse=d == 1)
        for name, final in list(finals.items())[1:]:
            if np.isfinite(final).all():
                continue
            d, b, u = (int(i) for i in np.argwhere(~np.isfinite(final))[0])
            fault = Fault(f"layer {layer_index} ({layer.name}) state {name} (checked at the "
                          "last step only)", float(final[d, b, u]), None, b, u)
            self.faults.append(((output.shape[0], layer_index), fault))

    def head(self, name: str, y: np.ndarray, per_step: bool, layer_count: int) -> None:
        """Check the head's output: (T, B, ...) when ``per_step``, else (B, ...)."""
        if not self.active or not np.issubdtype(np.asarray(y).dtype, np.inexact):
            return
        y = np.asarray(y)
        what = f"head '{name}' output y"
        if per_step:
            self._scan(y.reshape(y.shape[0], y.shape[1], -1), what, layer_count)
        elif not np.isfinite(y).all():
            b, u = (int(i) for i in np.argwhere(~np.isfinite(y.reshape(y.shape[0], -1)))[0])
            self.faults.append(((self.x.shape[0], layer_count),
                                Fault(what, float(y.reshape(y.shape[0], -1)[b, u]), None, b, u)))

    def _scan(self, a: np.ndarray, what: str, order: int, reverse: bool = False) -> None:
        found = first_nonfinite(a, reverse)
        if found is None:
            return
        t, b, u = found
        position = a.shape[0] - 1 - t if reverse else t
        finite_input = bool(np.isfinite(self.x[t, b]).all()) if self.x is not None else None
        fault = Fault(what, float(a[t, b, u]), None if self.single_step else t, b, u, reverse,
                      finite_input)
        self.faults.append(((position, order), fault))
        self.located[id(fault)] = (order, t)

    def first(self) -> Fault | None:
        """The earliest fault found (ties: the lowest layer), or None."""
        return min(self.faults, key=lambda item: item[0])[1] if self.faults else None

    def report(self, unbatched: bool = False) -> None:
        """Raise or warn about the first fault, as the mode says."""
        fault = self.first()
        if fault is None:
            return
        if fault.input_finite and id(fault) in self.located:
            order, t = self.located[id(fault)]
            if order in self.context:
                cause = activation_fault(*self.context[order], t, fault)
                fault = fault if cause is None else replace(fault, cause=cause)
        if unbatched:
            fault = replace(fault, row=None)
        if self.mode == "raise":
            raise NonfiniteError(fault.message(), fault)
        warnings.warn(NonfiniteWarning(fault.message(), fault), stacklevel=3)


def activation_fault(layer, inputs: np.ndarray, params: dict, h0: np.ndarray,
                     output: np.ndarray, t: int, fault: Fault) -> str | None:
    """Why the state of ``layer`` became NaN/inf at step ``t`` (row ``fault.row``), when its
    input there and its previous state are finite and so are the pre-activations: an
    activation that returns NaN/inf for a finite value (named, with the value), or else a
    note that the recurrence did not diverge. None when the pre-activations are not finite
    (then the recurrence diverged) or cannot be worked out.

    The pre-activations are the layer's W x_t + U h_{t-1} + b over its stacked gates, from its
    parameters' roles (input, recurrent, bias); they are what the activations receive up to
    the cell's own gating, so each activation is also tried on values between them.
    """
    T, b, d = output.shape[0], fault.row or 0, 1 if fault.reverse else 0
    H = output.shape[-1] // layer.directions
    before = t + 1 if fault.reverse else t - 1
    previous = (output[before, b, d * H:(d + 1) * H] if 0 <= before < T else h0[d, b])
    x_t = inputs[t, b]
    if not (np.isfinite(x_t).all() and np.isfinite(previous).all()):
        return None
    z = _preactivations(layer, params, layer.suffixes[d], x_t, previous)
    if z is None or not np.isfinite(z).all():
        return None
    largest = float(np.max(np.abs(z), initial=0.0))
    span = max(1.0, largest, float(np.max(np.abs(previous), initial=0.0)))
    grid = np.linspace(-span, span, 1025)
    finite = (f"The input and the previous state there are finite, and so are the "
              f"pre-activations (largest |z| = {largest:.3g})")
    for values, exact in ((z, True), (np.concatenate([previous, grid]), False)):
        values = values.astype(output.dtype)
        for activation in layer.activations:
            if not activation.entry.elementwise:
                continue
            try:
                with np.errstate(all="ignore"):
                    got = np.asarray(activation(values))
            except Exception:  # noqa: BLE001 - a diagnosis only; the fault is reported anyway
                continue
            bad = np.flatnonzero(~np.isfinite(got))
            if bad.size:
                what = "pre-activation value" if exact else "value"
                return (f"{finite}, but activation '{activation.name}' (plugin "
                        f"'{activation.entry.source.plugin}', package "
                        f"{activation.entry.source.package}) returns {got[bad[0]]} for the "
                        f"finite {what} {values[bad[0]]!s}: the NaN/inf comes from the "
                        "activation, not from a diverging recurrence. Make it return a finite "
                        "number for every finite input, or choose another activation.")
    names = ", ".join(f"'{a.name}'" for a in layer.activations)
    return (f"{finite}, so the recurrence did not diverge in this step: the cell's "
            f"activations ({names}) or its arithmetic made the non-finite value. Check each "
            f"activation for NaN/inf at finite inputs within ±{span:.3g}.")


def _preactivations(layer, params: dict, suffix: str, x_t: np.ndarray,
                    previous: np.ndarray) -> np.ndarray | None:
    """W x_t + U h_{t-1} + b of one direction, from the parameters' roles; None when the
    layer has no recurrent matrix that takes h_{t-1}."""
    own = {}
    for name, (role, shape) in layer.parameter_shapes().items():
        if suffix:
            if not name.endswith(suffix):
                continue
        elif "_reverse" in name:
            continue
        own.setdefault(role, []).append((name, shape))
    z = None
    for name, shape in own.get("recurrent", ()):
        if len(shape) == 2 and shape[1] == previous.size:
            z = _times(params, name, shape, previous)
            if z is not None:
                break
    if z is None:
        return None
    with np.errstate(all="ignore"):
        for name, shape in own.get("input", ()):
            if len(shape) == 2 and shape == (z.size, x_t.size):
                part = _times(params, name, shape, x_t)
                if part is not None:
                    z = z + part
                    break
        for name, shape in own.get("bias", ()):
            if shape == (z.size,) and name in params:
                z = z + params[name]
                break
    return z


def _times(params: dict, name: str, shape: tuple, v: np.ndarray) -> np.ndarray | None:
    """params[name] @ v for a dense matrix or one stored as CSR (name.data/.indices/.indptr),
    in the parameter's dtype; None when it is not there."""
    with np.errstate(all="ignore"):
        if name in params:
            return params[name] @ v.astype(params[name].dtype)
        parts = [params.get(f"{name}.{part}") for part in ("data", "indices", "indptr")]
        if any(part is None for part in parts):
            return None
        return CSR(*parts, tuple(shape)).dot(v.astype(parts[0].dtype))


def first_nonfinite(a: np.ndarray, reverse: bool = False) -> tuple[int, int, int] | None:
    """(t, b, u) of the first NaN/inf of ``a`` (T, B, W) in time order (the last with
    ``reverse``), or None, one block of steps at a time (``validation.finite_blocks``)."""
    for t0, finite in validation.finite_blocks(a, reverse):
        if finite.all():
            continue
        bad = ~finite
        steps = np.flatnonzero(bad.any(axis=(1, 2)))
        t = int(steps[-1] if reverse else steps[0])
        b, u = (int(i) for i in np.argwhere(bad[t])[0])
        return t0 + t, b, u
    return None


def check_state(net, batch: int) -> None:
    """Fail before allocating zero states for ``batch`` sequences that cannot fit."""
    item = net.dtype.itemsize
    parts = {}
    for i, layer in enumerate(net.layers):
        for kind, width in layer.state_sizes().items():
            parts[f"layer {i} {kind} ({layer.directions}, {batch}, {width})"] = (
                layer.directions * batch * width * item)
    check_fits(parts, f"the states of {batch} sequences",
               "Run fewer sequences at a time.")
