"""The Python API: a ``Network`` built from a config, run on inputs, saved and loaded."""
from __future__ import annotations

import hashlib
import inspect
import os
import zlib
from pathlib import Path
from typing import Mapping

import numpy as np
import yaml

from . import config as config_mod
from . import device as device_mod
from . import display, guards
from . import progress as progress_mod
from .activations import bind
from .config import Config, Spec
from .devices import checked_device
from .errors import ConfigError, InputError, PluginError, RnnsimError, ShapeError, shown
from .io import read_npz, recover_folder, write_folder_atomic
from .plugins import Plugins, SavedNames, Source, get_plugins, keyword_params
from . import reservoir
from .results import RunResult, State
from .sparse import CSR, CSR_PARTS, scale_spectral_radius
from . import validation, yamlfile
from .validation import as_real_array, checked_lengths

SPECTRAL_RADIUS = "spectral_radius"
# The model folder: the config, the weights, and the plugin that provided each name used.
CONFIG_FILE, WEIGHTS_FILE, PLUGINS_FILE = "config.yaml", "weights.npz", "plugins.yaml"
SOURCE_FIELDS = ("plugin", "package", "version")


class Network:
    """A stack of recurrent layers and an optional head, with their weights.

    The weights depend on the input size k and the units p of each layer, never on the number
    of timesteps T: the same network runs on sequences of any length.
    """

    def __init__(self, config: Config, params: Mapping[str, np.ndarray] | None = None,
                 plugins: Plugins | None = None, origin: str = "config",
                 device: str | None = None):
        self.config = config
        self.origin = origin
        # Where the recurrence runs: the config's network.device unless overridden here.
        self.device = checked_device(device or config.network.device)
        self.plugins = plugins or get_plugins()
        self.dtype = np.dtype(config.network.dtype)
        # Saved weights need no initializer: only fresh weights resolve them.
        self.layers, self.head = self._build(check_inits=params is None)
        self.fast_math = config.network.fast_math
        shapes = self.parameter_shapes()
        sparse = {f"layers.{i}.{name}" for i, layer in enumerate(self.layers)
                  for name in getattr(layer, "sparse_parameters", ())}
        # Spectral radii known from scaling a fresh float64 matrix: name -> (digest of its
        # arrays as scaled, r).
        self._radii: dict[str, tuple[str | None, float]] = {}
        if params is None:
            guards.check_parameters(self)
            self.params = {}
            for name, (role, shape) in shapes.items():
                value = self._initialize(name, role, shape)
                if name in sparse:
                    value = value if isinstance(value, CSR) else CSR.from_dense(value)
                    self.params.update(value.params(name))
                else:
                    self.params[name] = value.to_dense() if isinstance(value, CSR) else value
                if name in self._radii:
                    self._radii[name] = (self._digest(name), self._radii[name][1])
        else:
            self.params = _checked_params(params, shapes, self.dtype, sparse)

    def known_spectral_radius(self, name: str) -> float | None:
        """The spectral radius of parameter ``name`` (``layers.0.W``) when a float64 matrix
        was scaled to its initializer's ``spectral_radius`` here: that value, exact to the
        rounding of the scaled entries (relative 1e-16). None when it was not scaled here, or
        its values have changed since (replaced or edited in place)."""
        digest, radius = self._radii.get(name, (None, None))
        return radius if digest is not None and digest == self._digest(name) else None

    def _digest(self, name: str) -> str:
        """A hash of the values, dtypes and shapes of the arrays holding parameter ``name``
        (a CSR's parts, else the one array): no copy of a large matrix is kept."""
        parts = [self.params[key] for key in (f"{name}.{part}" for part in CSR_PARTS)
                 if key in self.params] or [self.params[name]]
        h = hashlib.blake2b(digest_size=16)
        for part in map(np.ascontiguousarray, parts):
            h.update(f"{part.dtype}{part.shape}".encode())
            h.update(part.data)
        return h.hexdigest()

    @classmethod
    def from_config(cls, source: str | os.PathLike | Mapping,
                    device: str | None = None) -> "Network":
        """Build a network from a YAML file path or a mapping, with fresh seeded weights.

        device : 'cpu' or 'cuda' overrides the config's network.device
        """
        return cls(config_mod.parse(source, get_plugins().cells),
                   origin=config_mod.origin_of(source), device=device)

    @property
    def fast_math(self) -> bool:
        """Whether the CPU kernels use the activations' fast variants (tanh, sigmoid: see
        ``rnnsim.kernels.cpu.approx`` for their error); ``network.fast_math`` in the config."""
        return self._fast_math

    @fast_math.setter
    def fast_math(self, enabled: bool) -> None:
        self._fast_math = bool(enabled)
        for layer in self.layers:
            layer.fast_math = self._fast_math

    def __repr__(self) -> str:
        return display.network_text(self)

    def _repr_html_(self) -> str:
        """The layer table for Jupyter: units, parameter shapes in k and p, counts."""
        return display.network_html(self)

    @property
    def input_size(self) -> int:
        return self.config.network.input_size

    def _build(self, check_inits: bool = True):
        net = self.config.network
        problems, layers, size = [], [], net.input_size
        for i, layer in enumerate(net.layers):
            where = f"network.layers[{i}]"
            cell = None
            try:
                cell = self.plugins.cells.get(layer.cell, f"{where}.cell").cls
            except ConfigError as exc:
                problems.append(str(exc))
            if check_inits:
                problems += self._check_inits(layer.init, f"{where}.init")
            if cell is None:
                continue
            try:
                options = cell.parse_options(layer, where, self.plugins.cells)
                given = {"activation": layer.activation, **dict(options)}
                activations = [
                    bind(given.get(key) or Spec(name=default), f"{where}.{key}", self.plugins)
                    for key, default in cell.activation_slots.items()
                ]
                layers.append(cell(layer, size, activations, where, options))
            except ConfigError as exc:
                problems.append(str(exc))
                continue
            size = layers[-1].output_size
        head = None
        if net.head is not None:
            head_cfg = net.head
            if check_inits:
                problems += self._check_inits(head_cfg.init, "network.head.init")
            try:
                entry = self.plugins.heads.get(head_cfg.name, "network.head.name")
                spec = head_cfg.activation or Spec(name=entry.cls.default_activation)
                act = bind(spec, "network.head.activation", self.plugins, vector_ok=True)
                head = entry.cls(size, head_cfg.units, act)
            except ConfigError as exc:
                problems.append(str(exc))
            except Exception as exc:  # the head class's own code failed
                raise PluginError(f"head '{head_cfg.name}' (plugin '{entry.source.plugin}') "
                                  f"raised {type(exc).__name__} when built: {exc}. Fix the "
                                  "head class.") from None
        if not problems:
            for i, layer in enumerate(layers):
                problems += layer.attach(head, i == len(layers) - 1, self.device,
                                         f"network.layers[{i}]")
        if problems:
            lines = [line.removeprefix("  - ") for p in problems for line in p.splitlines()]
            raise ConfigError(config_mod.format_errors(self.origin, lines))
        return layers, head

    def _check_inits(self, init, where: str) -> list[str]:
        problems = []
        for role in type(init).model_fields:
            spec: Spec = getattr(init, role)
            if spec.name not in self.plugins.initializers:
                problems.append(self.plugins.initializers.unknown(spec.name, f"{where}.{role}"))
                continue
            fn = self.plugins.initializers.get(spec.name, where).fn
            accepted = keyword_params(fn)
            for key in spec.params:
                if key != SPECTRAL_RADIUS and accepted is not None and key not in accepted:
                    takes = ", ".join(accepted) or "no parameters"
                    problems.append(f"{where}.{role}.{key}: initializer '{spec.name}' has no "
                                    f"parameter '{key}'; it takes {takes} (and spectral_radius "
                                    "for square matrices).")
            radius = spec.params.get(SPECTRAL_RADIUS, 1.0)
            if isinstance(radius, bool) or not isinstance(radius, (int, float)) or \
                    not 0 <= radius < float("inf"):
                problems.append(f"{where}.{role}.{SPECTRAL_RADIUS}: expected a number >= 0, "
                                f"got {shown(radius)}.")
        return problems

    def parameter_shapes(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """Every parameter's full name (``layers.0.W``, ``head.b``) -> (role, shape)."""
        shapes = {}
        for i, layer in enumerate(self.layers):
            for name, spec in layer.parameter_shapes().items():
                shapes[f"layers.{i}.{name}"] = spec
        if self.head is not None:
            for name, spec in self.head.parameter_shapes().items():
                shapes[f"head.{name}"] = spec
        return shapes

    def parameter_table(self) -> list[dict]:
        """One row per parameter: name, symbol (W_a, U_a...), shape, count and whether it is
        sparse. A sparse (CSR) matrix counts its stored nonzeros, not rows x columns."""
        rows = []
        for name, (role, shape) in self.parameter_shapes().items():
            owner, _, short = name.rpartition(".")
            base, _, direction = short.partition("_")
            obj = self.head if owner == "head" else self.layers[int(owner.split(".")[1])]
            symbol = obj.symbols.get(base, base) + (f" ({direction})" if direction else "")
            stored = self.params.get(f"{name}.data")  # a CSR matrix's nonzeros
            rows.append({"name": name, "symbol": symbol, "role": role, "shape": shape,
                         "count": int(np.prod(shape)) if stored is None else int(stored.size),
                         "sparse": stored is not None})
        return rows

    def parameter_count(self, prefix: str = "") -> int:
        """How many parameters the network has (those whose names start with ``prefix``,
        such as 'layers.0.'): ``parameter_table``'s counts, so a sparse matrix counts its
        stored nonzeros, never its index arrays."""
        return sum(row["count"] for row in self.parameter_table()
                   if row["name"].startswith(prefix))

    def init_spec(self, name: str, role: str) -> tuple[Spec, str]:
        owner, index = name.split(".")[0], name.split(".")[1]
        if owner == "head":
            return getattr(self.config.network.head.init, role), f"network.head.init.{role}"
        layer = self.config.network.layers[int(index)]
        return getattr(layer.init, role), f"network.layers[{index}].init.{role}"

    def _initialize(self, name: str, role: str, shape: tuple[int, ...]) -> np.ndarray:
        spec, where = self.init_spec(name, role)
        entry = self.plugins.initializers.get(spec.name, where)
        seed = [self.config.network.seed, zlib.crc32(name.encode())]
        kwargs = {k: v for k, v in spec.params.items() if k != SPECTRAL_RADIUS}
        try:
            value = entry.fn(shape, np.random.default_rng(seed), self.dtype, **kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: initializer '{spec.name}' failed for parameter {name} "
                              f"of shape {shape}: {exc}. Check its parameters.") from None
        except RnnsimError:
            raise
        except Exception as exc:
            raise PluginError(f"initializer '{spec.name}' (plugin '{entry.source.plugin}') "
                              f"raised {type(exc).__name__} for parameter {name} of shape "
                              f"{shape}: {exc}. Fix the plugin, or choose another initializer "
                              f"at {where}.") from None
        _check_initial_value(value, entry, name, tuple(shape), self.dtype, where)
        sparse = isinstance(value, CSR)
        value = value.astype(self.dtype) if sparse else value.astype(self.dtype, copy=False)
        if SPECTRAL_RADIUS in spec.params:
            radius = float(spec.params[SPECTRAL_RADIUS])
            value = scale_spectral_radius(value, radius, where)
            if self.dtype == np.float64:
                self._radii[name] = (None, radius)
        return value if sparse else np.ascontiguousarray(value)

    def fit(self, u, y, washout: int = 0, ridge: float = 1e-6, *,
            check_finite: bool = True) -> "Network":
        """Train the ``ridge`` head on inputs ``u`` and targets ``y``; see ``rnnsim.reservoir.fit``.

        u : laid out as for ``run``; y : the same steps and sequences, head.units last
        washout : leading steps left out of the regression; ridge : L2 penalty on W_out
        """
        return reservoir.fit(self, u, y, washout=washout, ridge=ridge, check_finite=check_finite)

    def generate(self, steps: int, state: State | None = None, *, y0=None) -> RunResult:
        """Run ``steps`` steps in closed loop (the head's output is the next input) from
        ``state``; see ``rnnsim.reservoir.generate``."""
        return reservoir.generate(self, steps, state, y0=y0)

    def initial_state(self, batch: int | None = None) -> State:
        """Zero states for ``batch`` sequences, or for one unbatched sequence (``None``)."""
        B = 1 if batch is None else batch
        if not isinstance(B, (int, np.integer)) or isinstance(B, bool) or B < 1:
            raise ShapeError(f"initial_state(batch={batch!r}): batch must be a positive int, or "
                             "None for one unbatched sequence.")
        guards.check_state(self, int(B))
        layers = [layer.zero_states(B, self.dtype) for layer in self.layers]
        if batch is None:
            layers = [{n: s[:, 0] for n, s in states.items()} for states in layers]
        return State(tuple(layers))

    def step(self, x_t, state: State, *, check_finite: bool = True,
             nonfinite: str | None = None):
        """Advance every layer by one timestep: ``y, state = net.step(x_t, state)``.

        x_t : (B, k), or (k,) with an unbatched ``state`` (``batch_first`` plays no part)
        state : a ``State`` from ``initial_state``, ``step`` or ``RunResult.state``
        Returns the head's output for this step (the top layer's output without a head),
        (B, ...) or unbatched, and the new state. Repeated steps give the same bits as one
        ``run`` over the whole sequence. ``nonfinite`` as for ``run``.
        """
        if not isinstance(state, State):
            raise InputError(f"step needs a State (from net.initial_state(batch)), got "
                             f"{type(state).__name__}.")
        if any(layer.directions == 2 for layer in self.layers):
            raise ConfigError("step: a bidirectional layer needs the whole sequence; use run "
                              "on the full input, or make the layers unidirectional.")
        x = as_real_array(x_t, "x_t")
        k = self.input_size
        if x.ndim not in (1, 2) or x.shape[-1] != k:
            raise ShapeError(f"x_t has shape {x.shape}; expected (B, k) or (k,) for one "
                             f"sequence, with k = input_size = {k}.")
        if check_finite and not np.isfinite(x).all():
            validation.check_finite(x, "x_t")
        unbatched = x.ndim == 1
        B = 1 if unbatched else x.shape[0]
        x = np.ascontiguousarray(x, dtype=self.dtype).reshape(1, B, k)
        watch = guards.NonfiniteWatch(guards.nonfinite_mode(nonfinite, check_finite), x,
                                      single_step=True)
        if len(state.layers) != len(self.layers):
            raise ShapeError(f"state has {len(state.layers)} layers; this network has "
                             f"{len(self.layers)}. Use net.initial_state(batch).")
        finals = []
        for i, layer in enumerate(self.layers):
            states = self._layer_states(state.layers[i], i, B, unbatched, check_finite)
            params, inputs = self.layer_params(i), x
            x, states_next = self._run_layer(layer, params, x, states)
            watch.layer(i, layer, x, states_next, inputs=inputs, params=params,
                        h0=next(iter(states.values())))
            finals.append({n: s[:, 0] if unbatched else s for n, s in states_next.items()})
        y = x
        if self.head is not None:
            y = self.head_forward(self.head_params(), x, None)
            watch.head(self.config.network.head.name, y, self.head.per_step, len(self.layers))
        watch.report(unbatched)
        y = y[0] if self.head is None or self.head.per_step else y
        return (y[0] if unbatched else y), State(tuple(finals))

    def stepper(self, batch: int | None = None, state: State | None = None, *,
                check_finite: bool = True, nonfinite: str | None = None):
        """A compiled streaming step: ``stepper = net.stepper(batch)``, then
        ``y = stepper(x_t)`` for each step, at the cost of one compiled call.

        batch : the sequences stepped together; None: one unbatched sequence (x_t (k,))
        state : where to start (a ``State``; default zeros); ``stepper.state`` is where it
            stands, ``stepper.reset(state)`` starts again.
        The weights are bound when the stepper is made: make a new one after changing them.
        Steps give the same bits as one ``run`` over the whole sequence. ``check_finite`` and
        ``nonfinite`` as for ``run``; a bidirectional layer cannot be stepped.
        """
        from .stepper import Stepper

        if batch is not None and (not isinstance(batch, (int, np.integer)) or
                                  isinstance(batch, bool) or batch < 1):
            raise ShapeError(f"stepper(batch={batch!r}): batch must be a positive int, or None "
                             "for one unbatched sequence.")
        return Stepper(self, None if batch is None else int(batch), state,
                       check_finite=check_finite, nonfinite=nonfinite)

    def stream(self, inputs, state: State | None = None, *, check_finite: bool = True,
               nonfinite: str | None = None):
        """Step through ``inputs``, an iterable of x_t ((B, k), or (k,) for one sequence),
        yielding each step's output as ``stepper`` does; the batch is the first x_t's."""
        stepper = None
        for x_t in inputs:
            if stepper is None:
                shape = np.shape(x_t)
                stepper = self.stepper(None if len(shape) < 2 else shape[0], state,
                                       check_finite=check_finite, nonfinite=nonfinite)
            yield stepper(x_t)

    def _layer_states(self, given, i: int, B: int, unbatched: bool,
                      check_finite: bool) -> dict[str, np.ndarray]:
        """Layer ``i``'s mapping of a ``State``, every state (D, B, width) and checked."""
        sizes = self.layers[i].state_sizes()
        if set(given) != set(sizes):
            raise ShapeError(f"state.layers[{i}] holds {sorted(given)}; layer {i} "
                             f"({self.layers[i].name}) has the states {list(sizes)}. Use "
                             "net.initial_state(batch) or a RunResult.state of this network.")
        states = {}
        for name, width in sizes.items():
            where = f"state.layers[{i}]['{name}']"
            part = as_real_array(given[name], where)
            want = (self.layers[i].directions,) + (() if unbatched else (B,)) + (width,)
            if part.shape != want:
                raise ShapeError(f"{where} has shape {part.shape}; expected {want} "
                                 "(directions, batch, units) to match the input. Use "
                                 "net.initial_state(batch).")
            if check_finite and not np.isfinite(part).all():
                validation.check_finite(part, where)
            part = np.asarray(part, dtype=self.dtype)
            states[name] = part[:, None] if unbatched else part
        return states

    def start_states(self, h0, c0, B: int, unbatched: bool,
                     check_finite: bool) -> list[dict[str, np.ndarray]]:
        """Every layer's states (name -> (D, B, width)) to start a run from: a ``State`` as
        ``h0``, or ``h0`` for the first state and ``c0`` for the second of each layer (as
        ``run`` takes them), zeros for the rest."""
        if isinstance(h0, State):
            if c0 is not None:
                raise InputError("run: give either a State as h0 or c0, not both (a State "
                                 "already holds every state).")
            if len(h0.layers) != len(self.layers):
                raise ShapeError(f"h0 is a State of {len(h0.layers)} layers; this network has "
                                 f"{len(self.layers)}. Use a RunResult.state of this network.")
            return [self._layer_states(given, i, B, unbatched, check_finite)
                    for i, given in enumerate(h0.layers)]
        first = self.coerce_states(h0, "h0", [layer.hidden_size for layer in self.layers], B,
                                   unbatched, check_finite)
        second = self.coerce_states(c0, "c0", [layer.cell_size for layer in self.layers], B,
                                    unbatched, check_finite)
        starts = []
        for layer, h, c in zip(self.layers, first, second):
            given = [h] if c is None else [h, c]
            starts.append({name: given[k] if k < len(given) else
                           np.zeros((layer.directions, B, width), self.dtype)
                           for k, (name, width) in enumerate(layer.state_sizes().items())})
        return starts

    def layer_params(self, i: int) -> dict[str, np.ndarray]:
        """Layer ``i``'s parameters by short name (``W``, ``U_reverse``, ``W.data``...), and
        the head's (``head.W``...) for a layer whose loop computes the readout (esn feedback)."""
        prefix = f"layers.{i}."
        params = {k[len(prefix):]: v for k, v in self.params.items() if k.startswith(prefix)}
        if self.layers[i].feedback_size:  # its loop computes the readout
            params.update({f"head.{k}": v for k, v in self.head_params().items()})
        return params

    def head_params(self) -> dict[str, np.ndarray]:
        return {k[5:]: v for k, v in self.params.items() if k.startswith("head.")}

    def _run_layer(self, layer, params, x, states, lengths=None, **options):
        """``layer.run`` on this network's device (``options``: the CPU cell's extras)."""
        if self.device == "cuda":
            return device_mod.run_layer(layer, params, x, states, lengths)
        return layer.run(params, x, states, lengths, **options)

    def run(self, x, h0=None, c0=None, *, lengths=None, check_finite: bool = True,
            nonfinite: str | None = None, out: str | os.PathLike | None = None,
            chunk_steps: int | None = None, resume: bool = False, teacher=None,
            progress=None) -> RunResult:
        """Run the network on ``x`` and return a ``RunResult``.

        x : (T, B, k), or (B, T, k) with ``batch_first``, or (T, k) for one sequence
        h0 : None (zeros), a ``State`` (``RunResult.state``) to continue where a run stopped,
            an array (layers*D, B, p) in PyTorch layout, or one (D, B, p) array per layer;
            without the B axis for unbatched input. With an LSTM ``proj_size``, p is the
            projected width.
        c0 : the second state of the layers that have one (an LSTM's cell state c, the fed-back
            y of an esn layer with feedback), laid out like ``h0`` with that width: None
            (zeros), one array over those layers, or one entry per layer (None for layers
            without one). A ``State`` as ``h0`` gives every state of every layer, however many.
        lengths : None, or (B,) ints: the steps of each sequence. Steps past a sequence's end
            leave its state untouched and give zero outputs; a reverse direction starts at
            each sequence's own end; ``last_step`` heads read each sequence's own last step.
        check_finite : raise InputError on NaN/inf in ``x``, ``h0`` or ``c0``
        nonfinite : 'raise' (NonfiniteError), 'warn' (NonfiniteWarning) or 'ignore' when a
            state or the head's output becomes NaN/inf; the message names the layer, step,
            unit and batch row where it first happened. Default: 'raise', or 'ignore' with
            ``check_finite=False``.
        out : a ``.npy`` path: stream the output to disk in chunks of ``chunk_steps`` steps,
            in bounded memory (x may be a memmap); ``resume`` continues an interrupted run.
            See ``rnnsim.longrun.run_to_file``; the result's output is then a read-only memmap.
        teacher : for a top esn layer with output ``feedback``: targets laid out like the head's
            y, fed back in place of the head's own predictions (teacher forcing, as in ``fit``)
        progress : None, ``progress(steps_done, T)``, or a tqdm-compatible bar
            (``rnnsim.progress.reporter``): called after each chunk of a run streamed to disk,
            at the start and the end of a run in memory (one kernel call per layer)
        """
        if out is not None and teacher is not None:
            raise InputError("run: teacher forcing runs in memory; leave out out= or teacher.")
        if out is not None:
            from .longrun import run_to_file

            return run_to_file(self, x, out, h0, c0, lengths=lengths, check_finite=check_finite,
                               nonfinite=nonfinite, chunk_steps=chunk_steps, resume=resume,
                               progress=progress)
        if chunk_steps is not None or resume:
            raise InputError("run: chunk_steps and resume apply to a run streamed to disk; "
                             "give out='out.npy' too.")
        mode = guards.nonfinite_mode(nonfinite, check_finite)
        x, unbatched = self._coerce_input(x, check_finite)
        T, B, _ = x.shape
        lengths = checked_lengths(lengths, T, B, unbatched)
        if teacher is not None:
            teacher = reservoir.teacher_signal(self, teacher, T, B, unbatched, check_finite)
        starts = self.start_states(h0, c0, B, unbatched, check_finite)
        report = progress_mod.reporter(progress)
        if report is not None:
            report(0, T)
        watch = guards.NonfiniteWatch(mode, x)
        finals = []
        for i, (layer, states) in enumerate(zip(self.layers, starts)):
            top = {"teacher": teacher} if teacher is not None and i == len(self.layers) - 1 else {}
            params, inputs = self.layer_params(i), x
            x, final = self._run_layer(layer, params, x, states, lengths, **top)
            watch.layer(i, layer, x, final, inputs=inputs, params=params,
                        h0=next(iter(states.values())))
            finals.append(final)
        y = None
        if self.head is not None:
            y = self.head_forward(self.head_params(), x, lengths)
            watch.head(self.config.network.head.name, y, self.head.per_step, len(self.layers))
        watch.report(unbatched)
        if y is not None:
            if self.head.per_step:
                y = self._to_user_layout(y, unbatched)
            elif unbatched:
                y = y[0]
        output = self._to_user_layout(x, unbatched)
        if unbatched:
            finals = [{n: s[:, 0] for n, s in states.items()} for states in finals]
        if report is not None:
            report(T, T)
        return RunResult(output, tuple(finals), y)

    def head_forward(self, params: dict, x: np.ndarray, lengths) -> np.ndarray:
        """The head's y for the states ``x`` (T, B, F): (T, B, ...) per step, else (B, ...);
        a head plugin that raises or returns something else is reported by name."""
        name = self.config.network.head.name
        entry = self.plugins.heads.entries.get(name)
        plugin = f"head '{name}' (plugin '{entry.source.plugin if entry else 'unknown'}')"
        try:
            y = np.asarray(self._head_outputs(params, x, lengths))
        except RnnsimError:
            raise
        except Exception as exc:
            raise PluginError(f"{plugin} raised {type(exc).__name__} in forward on states of "
                              f"shape {x.shape}: {exc}. Fix the head.") from None
        lead = x.shape[:2] if self.head.per_step else x.shape[1:2]
        if y.dtype.kind not in "biuf" or y.shape[:len(lead)] != lead:
            raise PluginError(f"{plugin} returned an array of shape {y.shape} and dtype "
                              f"{y.dtype} for states of shape {x.shape}; expected numbers with "
                              f"leading axes {lead} ({'(T, B)' if self.head.per_step else '(B,)'}"
                              f", per_step = {self.head.per_step}).")
        return y

    def _head_outputs(self, params: dict, x: np.ndarray, lengths) -> np.ndarray:
        if lengths is None:
            return self.head.forward(params, x)
        if not self.head.per_step:
            if "lengths" not in _keyword_names(self.head.forward):
                raise PluginError(f"head '{self.config.network.head.name}' does not take "
                                  "lengths=; run without lengths, or give its forward a "
                                  "lengths argument.")
            return self.head.forward(params, x, lengths=lengths)
        y = np.array(self.head.forward(params, x))
        y[np.arange(x.shape[0])[:, None] >= lengths[None, :]] = 0
        return y

    def _to_user_layout(self, a: np.ndarray, unbatched: bool) -> np.ndarray:
        if unbatched:
            return a[:, 0]
        return np.ascontiguousarray(a.swapaxes(0, 1)) if self.config.network.batch_first else a

    def _coerce_input(self, x, check_finite: bool):
        x = as_real_array(x, "x")
        k = self.input_size
        if x.ndim not in (2, 3):
            raise ShapeError(f"input x has shape {x.shape} (rank {x.ndim}); expected (T, B, k)"
                             f"{' with batch_first: (B, T, k)' if self.config.network.batch_first else ''}"
                             f" or (T, k) for one sequence, with k = input_size = {k}.")
        if x.shape[-1] != k:
            raise ShapeError(f"input x has shape {x.shape}: its last dimension must be "
                             f"input_size = {k} (network.input_size), got {x.shape[-1]}. Check "
                             "the feature axis is last.")
        if 0 in x.shape:
            raise ShapeError(f"input x has shape {x.shape}: it needs at least one timestep "
                             "and one sequence.")
        T, B = (x.shape[0], 1) if x.ndim == 2 else x.shape[:2]
        guards.check_run(self, *((B, T) if self.config.network.batch_first and x.ndim == 3
                                 else (T, B)))
        if check_finite:
            validation.check_finite(x, "x")
        unbatched = x.ndim == 2
        if unbatched:
            x = x[:, None, :]
        elif self.config.network.batch_first:
            x = x.swapaxes(0, 1)
        return np.ascontiguousarray(x, dtype=self.dtype), unbatched

    def coerce_states(self, value, name: str, widths, B: int, unbatched: bool,
                        check_finite: bool) -> list[np.ndarray | None]:
        """One (D, B, width) state per layer from ``value``; None where a width is None."""
        expected = [None if w is None else (layer.directions, B, w)
                    for layer, w in zip(self.layers, widths)]
        used = [shape for shape in expected if shape is not None]
        if value is None:
            return [None if shape is None else np.zeros(shape, self.dtype) for shape in expected]
        if isinstance(value, (list, tuple)):
            if len(value) != len(expected):
                raise ShapeError(f"{name} has {len(value)} entries; expected one per layer "
                                 f"({len(expected)}).")
            parts = [None if v is None else as_real_array(v, f"{name}[{i}]")
                     for i, v in enumerate(value)]
        else:
            if not used:
                raise ShapeError(f"{name} is given but no layer has that state (only LSTM "
                                 f"layers have a cell state). Leave {name} out.")
            stacked = as_real_array(value, name)
            if unbatched and stacked.ndim == 2:
                stacked = stacked[:, None, :]
            sizes = {shape[2] for shape in used}
            rows = sum(shape[0] for shape in used)
            if len(sizes) > 1:
                raise ShapeError(f"{name} has shape {np.shape(value)}, but as one array it "
                                 "needs every layer to have the same units; pass a list with "
                                 "one (D, B, p) array per layer.")
            if stacked.shape != (rows, B, used[0][2]):
                want = (rows, used[0][2]) if unbatched else (rows, B, used[0][2])
                raise ShapeError(f"{name} has shape {np.shape(value)}; expected {want} "
                                 "(layers*directions, batch, units).")
            chunks = iter(np.split(stacked, np.cumsum([s[0] for s in used])[:-1]))
            parts = [None if shape is None else next(chunks) for shape in expected]
        states = []
        for i, (part, shape) in enumerate(zip(parts, expected)):
            if shape is None and part is not None:
                raise ShapeError(f"{name}[{i}] is given but layer {i} has no such state; "
                                 "pass None for it.")
            if shape is None or part is None:
                states.append(None if shape is None else np.zeros(shape, self.dtype))
                continue
            if unbatched and part.ndim == 2:
                part = part[:, None, :]
            if part.shape != shape:
                want = (shape[0], shape[2]) if unbatched else shape
                raise ShapeError(f"{name} for layer {i} has shape {part.shape}; expected {want} "
                                 "(directions, batch, units).")
            if check_finite:
                validation.check_finite(part, name)
            states.append(np.ascontiguousarray(part, dtype=self.dtype))
        return states

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``config.yaml``, ``weights.npz`` and ``plugins.yaml`` into the folder ``path``,
        atomically.

        ``plugins.yaml`` records, for every activation, initializer and head name the model
        uses, the plugin, package and version that provided it, so that loading the model where
        one is missing says which package to install. An existing folder is replaced only
        when it holds nothing but these files (``OutputError`` otherwise: a project folder is
        never swept away).
        """
        path = Path(path).resolve()

        def write(folder: Path) -> None:
            (folder / CONFIG_FILE).write_text(yaml.safe_dump(self.config.dump(),
                                                             sort_keys=False))
            with open(folder / WEIGHTS_FILE, "wb") as fh:
                np.savez(fh, **self.params)
            (folder / PLUGINS_FILE).write_text(
                "# The plugin package that provided each name this model uses, when it was "
                "saved.\n" + yaml.safe_dump(self.plugin_sources(), sort_keys=False))

        write_folder_atomic(path, write)
        return path

    def used_names(self) -> dict[str, set[str]]:
        """The plugin names this network uses, by kind: activation, initializer, head."""
        net = self.config.network
        used: dict[str, set[str]] = {"activation": set(), "initializer": set(), "head": set()}
        inits = [layer.init for layer in net.layers]
        for layer in self.layers:
            used["activation"].update(a.name for a in layer.activations)
        if self.head is not None:
            used["head"].add(net.head.name)
            activation = getattr(self.head, "activation", None)  # a head may not keep it
            if activation is not None:
                used["activation"].add(activation.name)
            inits.append(net.head.init)
        for init in inits:
            used["initializer"].update(getattr(init, role).name
                                       for role in type(init).model_fields)
        return used

    def plugin_sources(self) -> dict[str, dict[str, dict[str, str]]]:
        """kind -> name -> {plugin, package, version} for every name in ``used_names``: the
        installed plugin's, else what the model this network was loaded from recorded."""
        found = self.plugins.sources_of(self.used_names())
        saved = self.plugins.initializers.saved
        recorded = (saved.names or {}) if saved is not None else {}
        out: dict[str, dict[str, dict[str, str]]] = {}
        for kind, names in self.used_names().items():
            for name in sorted(names):
                source = found.get(kind, {}).get(name) or recorded.get(kind, {}).get(name)
                if source is not None:
                    out.setdefault(kind, {})[name] = {f: getattr(source, f)
                                                      for f in SOURCE_FIELDS}
        return out


def load(path: str | os.PathLike, device: str | None = None) -> Network:
    """Load a network saved with ``Network.save``: the same config and the same weights.

    Needs the activations and head the model uses, but none of its initializers (the weights
    are saved). A missing one is reported with the package ``plugins.yaml`` recorded for it.
    device : 'cpu' or 'cuda' overrides the saved config's network.device
    """
    path = Path(path)
    recover_folder(path)  # a save that a crash cut between its two renames
    if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        raise InputError(f"'{path}' is not an rnnsim model folder: it needs {CONFIG_FILE} and "
                         f"{WEIGHTS_FILE}, as written by Network.save or `rnnsim run --save`.")
    config = config_mod.parse(path / CONFIG_FILE, get_plugins().cells)
    saved = read_saved_names(path)
    params = read_npz(path / WEIGHTS_FILE)
    return Network(config, params, plugins=get_plugins().for_model(saved), origin=saved.where,
                   device=device)


def read_saved_names(path: Path) -> SavedNames:
    """The plugin record of the model folder ``path``; ``names`` is None for a folder saved
    before rnnsim wrote one."""
    where = f"model '{path}'"
    record = path / PLUGINS_FILE
    if not record.is_file():
        return SavedNames(None, where)
    fix = ("The file only names the plugin packages the model was saved with: restore it, or "
           "delete it to load the model without it.")
    try:
        data = yamlfile.read_yaml_file(record, f"'{record}'", InputError)
    except InputError as exc:
        raise InputError(f"{exc} {fix}") from None
    names: dict[str, dict[str, Source]] = {}
    for kind, entries in (data or {}).items() if isinstance(data, dict) else [(None, data)]:
        if not isinstance(kind, str) or not isinstance(entries, dict):
            raise InputError(f"'{record}' holds {shown(data)}; expected a mapping of kind "
                             f"(activation, initializer, head) to names. {fix}")
        for name, source in entries.items():
            if not isinstance(source, dict) or \
                    not all(isinstance(source.get(f), str) for f in SOURCE_FIELDS):
                raise InputError(f"'{record}': {kind} {name!r} is recorded as {shown(source)}; "
                                 f"expected a mapping with {', '.join(SOURCE_FIELDS)}. {fix}")
            names.setdefault(kind, {})[str(name)] = Source(*(source[f] for f in SOURCE_FIELDS))
    return SavedNames(names, where)


def open_network(path: str | os.PathLike, device: str | None = None) -> Network:
    """A model folder loaded, a YAML config built with fresh weights, or another framework's
    file imported by the importer for its type (on ``device``, default: the model's own)."""
    path = Path(path)
    if not path.is_dir() and path.suffix.lower() not in (".yaml", ".yml"):
        from .importers import find_importer, import_file

        entry = find_importer(path)
        if entry is not None:
            return on_device(imported_network(import_file(path, entry.name), path), device)
    return open_native(path, device)


def open_native(path: str | os.PathLike, device: str | None = None) -> Network:
    """rnnsim's own formats, no importer asked: a model folder loaded, or else a YAML config
    built with fresh weights (on ``device``, default: the model's own)."""
    path = Path(path)
    return load(path, device) if path.is_dir() else Network.from_config(path, device)


def imported_network(model, path) -> Network:
    """``model`` if an importer made a ``Network`` of ``path``; a ConfigError for a graph."""
    if not isinstance(model, Network):
        raise ConfigError(f"'{path}' imports as a graph that runs as it is: use `rnnsim run "
                          f"{path} --input FEEDS.npz` or `rnnsim info {path}`.")
    return model


def on_device(net: Network, device: str | None) -> Network:
    """``net``, or the same weights on ``device`` when it is given."""
    return net if device is None else Network(net.config, net.params, device=device)


def _checked_params(params, shapes, dtype, sparse=frozenset()) -> dict[str, np.ndarray]:
    """The weights validated against the shapes; names in ``sparse`` come as CSR triples."""
    out, params, problems = {}, dict(params), []
    for name in sparse:
        keys = [f"{name}.{part}" for part in CSR_PARTS]
        if all(key in params for key in keys):
            out.update(CSR.from_params(params, name, shapes[name][1]).astype(dtype).params(name))
            for key in keys:
                del params[key]
        else:
            problems.append(f"missing sparse parameter '{name}' of shape {shapes[name][1]} "
                            "(as .data, .indices and .indptr)")
    problems += [f"missing parameter '{name}' of shape {shape}" for name, (_, shape)
                 in shapes.items() if name not in params and name not in sparse]
    problems += [f"unexpected parameter '{name}'" for name in params
                 if name not in shapes or name in sparse]
    for name, value in params.items():
        if name in shapes and name not in sparse:
            value = as_real_array(value, f"parameter '{name}'")
            if value.shape != shapes[name][1]:
                problems.append(f"parameter '{name}' has shape {value.shape}; expected "
                                f"{shapes[name][1]}")
            out[name] = np.ascontiguousarray(value, dtype=dtype)
    if problems:
        raise ShapeError("the weights do not fit the config: " + "; ".join(problems) + ".")
    return out


def _check_initial_value(value, entry, name: str, shape: tuple[int, ...], dtype: np.dtype,
                         where: str) -> None:
    """PluginError unless an initializer's ``value`` is an array (or CSR matrix) of exactly
    ``shape`` and ``dtype`` with finite values, as the register_initializers hook asks."""
    who = (f"initializer '{entry.name}' (plugin '{entry.source.plugin}', package "
           f"{entry.source.package})")
    hint = ("An initializer is called as fn(shape, rng, dtype, **params) and returns a new "
            "array of exactly that shape and dtype, e.g. rng.normal(size=shape).astype(dtype); "
            f"fix it, or choose another initializer at {where}.")
    if not isinstance(value, (np.ndarray, CSR)):
        raise PluginError(f"{who} returned {type(value).__name__} for parameter {name} "
                          f"{shape}; expected a numpy array of shape {shape} and dtype {dtype}. "
                          + hint)
    values = value.data if isinstance(value, CSR) else value
    if value.shape != shape or values.dtype != dtype:
        raise PluginError(f"{who} returned an array of shape {tuple(value.shape)} and dtype "
                          f"{values.dtype} for parameter {name}; expected shape {shape} and "
                          f"dtype {dtype} (the network's dtype). " + hint)
    bad = ~np.isfinite(values)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise PluginError(f"{who} returned {int(bad.sum())} NaN/inf value(s) for parameter "
                          f"{name} of shape {shape} and dtype {dtype}, the first "
                          f"{values[first]} at index {first}"
                          f"{' of its nonzeros' if isinstance(value, CSR) else ''}. " + hint)


def _keyword_names(fn) -> set[str]:
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return set()


__all__ = ["Network", "RunResult", "State", "load", "open_network", "RnnsimError"]
