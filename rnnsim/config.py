"""Config schema (pydantic, unknown keys forbidden), config files and readable errors."""
from __future__ import annotations

import contextlib
import difflib
import os
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, Optional

from pydantic import (BaseModel, ConfigDict, Field, PydanticUserError, ValidationError,
                      model_validator)

from .devices import DEVICES
from .errors import ConfigError, PluginError, shown


# Every model (a cell's Options too, by inheritance) builds its validator on first use rather
# than when its class is created: listing plugins then builds none, and validating a config
# builds only the models it uses (``built_by`` turns a plugin's model that cannot be built
# into a PluginError when it is first used).
LAZY = ConfigDict(strict=True, frozen=True, defer_build=True)


class _Strict(BaseModel):
    model_config = ConfigDict(LAZY, extra="forbid")


class Spec(BaseModel):
    """A plugin chosen by name, with its parameters: ``tanh`` or ``{name: elu, alpha: 0.5}``."""

    model_config = ConfigDict(LAZY, extra="allow")
    name: str

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value}
        if isinstance(value, Mapping) and "name" not in value:
            raise ValueError("a mapping here needs a 'name' key, e.g. {name: leaky_relu, alpha: 0.1}")
        if not isinstance(value, Mapping):
            raise ValueError("expected a plugin name such as 'tanh' or a mapping "
                             "{name: leaky_relu, alpha: 0.1}")
        return value

    @property
    def params(self) -> dict[str, Any]:
        """The parameters given besides ``name``."""
        return dict(self.model_extra or {})

    def dump(self) -> str | dict:
        """The shortest YAML form: the bare name when there are no parameters."""
        return {"name": self.name, **self.params} if self.params else self.name


@contextlib.contextmanager
def built_by(model: type[BaseModel], owner: str):
    """Raise a PluginError naming ``owner`` when pydantic cannot build ``model``'s validator or
    schema in the block (a field type it cannot check, a name it cannot resolve): models are
    built on first use (``LAZY``), so a plugin's broken one shows only there."""
    try:
        yield
    except PydanticUserError as exc:
        raise PluginError(f"{owner} has a model pydantic cannot build, {model.__qualname__}: "
                          f"{str(exc).splitlines()[0]} Fix that class.") from None


def _spec(name: str):
    return Field(default_factory=lambda: Spec(name=name))


class LayerInit(_Strict):
    """Initializers of a layer's input weights, recurrent weights, biases and (esn) feedback
    weights."""

    input: Spec = _spec("xavier_uniform")
    recurrent: Spec = _spec("orthogonal")
    bias: Spec = _spec("zeros")
    feedback: Spec = _spec("input_bernoulli")


DEFAULT_CELL = "elman"


class CellOptions(_Strict):
    """The base of a cell's own layer keys (``Cell.Options``): each a pydantic field, None
    meaning "not set" (the cell's default)."""


class LayerConfig(BaseModel):
    """One recurrent layer: ``units`` (p) is independent of the number of timesteps.

    The keys below are every layer's; any other key is an option of the chosen cell, checked
    against that cell's ``Options`` schema when the network is built (``Cell.parse_options``).
    """

    model_config = ConfigDict(LAZY, extra="allow")
    cell: str = DEFAULT_CELL
    units: int = Field(gt=0, description="p, the number of hidden units")
    activation: Optional[Spec] = Field(default=None, description="default: the cell's own")
    init: LayerInit = Field(default_factory=LayerInit)
    bias: bool = True
    bidirectional: bool = False


class HeadInit(_Strict):
    """Initializers of a head's weight matrix and bias."""

    weight: Spec = _spec("xavier_uniform")
    bias: Spec = _spec("zeros")


class HeadConfig(_Strict):
    """An output head on the top layer's states."""

    name: str
    units: Optional[int] = Field(default=None, gt=0, description="outputs; default: the top layer's width")
    activation: Optional[Spec] = Field(default=None, description="default: the head's own")
    init: HeadInit = Field(default_factory=HeadInit)


class NetworkConfig(_Strict):
    """The network: input size k, dtype, seed and a stack of layers."""

    input_size: int = Field(gt=0, description="k, features per timestep")
    dtype: Literal["float32", "float64"] = "float32"
    device: Literal[DEVICES] = Field(default="cpu", description="where the recurrence "
                                           "runs; cuda needs an NVIDIA GPU and rnnsim[cuda]")
    seed: int = Field(default=0, ge=0, description="seeds the weights (a non-negative integer)")
    batch_first: bool = False
    fast_math: bool = Field(default=False, description="the CPU kernels evaluate tanh and "
                            "sigmoid with fast approximations (max error: docs/performance.md)")
    layers: list[LayerConfig] = Field(min_length=1)
    head: Optional[HeadConfig] = None


class MemoryCapacityConfig(_Strict):
    """The memory-capacity measurement (`rnnsim analyze`, the memory_capacity metric)."""

    max_delay: Optional[int] = Field(default=None, gt=0, description="longest delay (default "
                                     "min(2 N, 200))")
    washout: int = Field(default=200, ge=0, description="leading steps left out")
    ridge: float = Field(default=1e-8, ge=0, description="L2 penalty of the delay readouts")
    test_fraction: float = Field(default=0.5, ge=0, lt=1, description="share of the steps "
                                 "held out to score the readouts (0: in-sample)")


class LyapunovConfig(_Strict):
    """The largest_lyapunov metric's options."""

    warmup: int = Field(default=100, ge=0, description="steps run before the exponent is "
                        "averaged (added to run.timesteps)")


class RunConfig(_Strict):
    """Defaults for `rnnsim run` when no input file is given."""

    timesteps: int = Field(default=20, gt=0, description="T, steps per sequence")
    batch: int = Field(default=1, gt=0, description="B, sequences run together")
    memory_capacity: MemoryCapacityConfig = Field(default_factory=MemoryCapacityConfig)
    lyapunov: LyapunovConfig = Field(default_factory=LyapunovConfig)


class SweepConfig(_Strict):
    """A parameter sweep run by `rnnsim sweep` (see docs/sweeps.md)."""

    grid: dict[str, Any] = Field(min_length=1, description="config key path -> values: a list, "
                                 "START:STOP:COUNT, START:STOP:COUNT:log or 'a,b,c'")
    metrics: list[str] = Field(min_length=1, description="metric names, see `rnnsim sweep --help`")
    repeats: int = Field(default=1, gt=0, description="seeds per grid point")
    seed: Optional[int] = Field(default=None, ge=0, description="base of the per-point seeds "
                                "(default: network.seed)")
    output: Optional[str] = Field(default=None, description="table to write: .csv or .parquet")
    on_error: Literal["fail", "record", "skip"] = Field(
        default="record", description="a point that fails: stop the sweep (fail), write NaN "
        "and the error in an error column (record), or leave it out of the table (skip)")


class Config(_Strict):
    """A whole config file."""

    network: NetworkConfig
    run: RunConfig = Field(default_factory=RunConfig)
    sweep: Optional[SweepConfig] = None

    def dump(self) -> dict:
        """A plain mapping that ``Config.parse`` turns back into an equal config."""
        data = _dump(self)
        if data["sweep"] is None:
            del data["sweep"]
        return data


def _dump(value):
    if value is None:
        return None
    if isinstance(value, Spec):
        return value.dump()
    if isinstance(value, BaseModel):
        extra = value.model_extra if isinstance(value, LayerConfig) else None
        return {**{name: _dump(getattr(value, name)) for name in type(value).model_fields},
                **(extra or {})}
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


# An error message lists at most this many problems.
MAX_LISTED_ERRORS = 20


def read_yaml(path: str | Path) -> dict:
    """The mapping in a YAML config file (see ``yamlfile.read_yaml_file``)."""
    from . import yamlfile  # yaml is imported by the commands that read a file, not by all

    origin = f"config file '{path}'"
    data = yamlfile.read_yaml_file(path, origin)
    if not isinstance(data, dict):
        raise ConfigError(
            f"{origin} must hold a mapping with a 'network' key, not "
            f"{type(data).__name__}. See configs/quickstart.yaml."
        )
    return data


def parse(source: str | Path | Mapping, cells=None) -> Config:
    """Validate a config given as a YAML path or a mapping; report every error at once.

    cells : the registry of cells (``get_plugins().cells``, as every entry point passes):
        each layer's keys beyond every layer's are then checked against its cell's
        ``Options``. Without it they are checked when the network is built.
    The ``sweep:`` section's grid key paths and metric names are checked by
    ``rnnsim.sweep.parse_config``, which sweeps (and ``rnnsim validate``) use."""
    origin = origin_of(source)
    data = read_yaml(source) if isinstance(source, (str, Path)) else source
    if not isinstance(data, Mapping):
        raise ConfigError(f"{origin} must be a mapping with a 'network' key, "
                          f"not {type(data).__name__}.")
    problems = [] if cells is None else _cell_option_problems(data, cells)
    try:
        config = Config.model_validate(dict(data))
    except ValidationError as exc:
        problems = describe_errors(exc) + problems
    if problems:
        raise ConfigError(format_errors(origin, problems))
    return config


def _cell_option_problems(data: Mapping, cells) -> list[str]:
    """The problems of every layer's own keys in the raw ``data``, checked by its cell."""
    network = data.get("network")
    layers = network.get("layers") if isinstance(network, Mapping) else None
    problems = []
    for i, layer in enumerate(layers if isinstance(layers, list) else []):
        name = layer.get("cell", DEFAULT_CELL) if isinstance(layer, Mapping) else None
        if not isinstance(name, str) or name not in cells:  # reported with the other names
            continue
        where = f"network.layers[{i}]"
        extras = {k: v for k, v in layer.items() if k not in LayerConfig.model_fields}
        try:
            cells.entries[name].cls.parse_options(extras, where, cells)
        except ConfigError as exc:
            problems += str(exc).splitlines()
    return problems


def origin_of(source) -> str:
    """How error messages name a config given as a path or a mapping."""
    return f"config file '{source}'" if isinstance(source, (str, os.PathLike)) else "config"


def format_errors(origin: str, problems: list[str]) -> str:
    """One message listing every problem, each with its key path."""
    count = f"{len(problems)} error" + ("s" if len(problems) > 1 else "")
    listed = problems[:MAX_LISTED_ERRORS]
    more = len(problems) - len(listed)
    return (f"{origin} has {count}:\n" + "\n".join(f"  - {p}" for p in listed)
            + (f"\n  ... and {more} more." if more else ""))


def key_path(loc: tuple) -> str:
    """``('network', 'layers', 0, 'units')`` -> ``network.layers[0].units``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def describe_errors(exc: ValidationError, prefix: tuple = (),
                    allowed: list[str] | None = None) -> list[str]:
    """pydantic's errors as 'key.path: what is wrong', each path below ``prefix``; ``allowed``
    lists the keys of the model validated there (default: read from ``Config``)."""
    return [describe_error(error, prefix, allowed) for error in exc.errors()]


def describe_error(error: dict, prefix: tuple = (), allowed: list[str] | None = None) -> str:
    """One of pydantic's errors as 'key.path: what is wrong' (see ``describe_errors``)."""
    loc = prefix + tuple(p for p in error["loc"]
                         if not (isinstance(p, str) and p.startswith("function-")))
    path = key_path(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1]) if allowed is None else allowed
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"{path}: unknown key{hint}. Allowed here: {', '.join(allowed)}."
    if kind == "missing":
        return f"{path}: required key is missing."
    message = error["msg"].removeprefix("Value error, ")
    return f"{path}: {message} (got {shown(error.get('input'))})."


def _allowed_keys(loc: tuple) -> list[str]:
    model: Any = Config
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) else None
        if field is None:
            return []
        model = model_in(field.annotation)
    return list(model.model_fields) if isinstance(model, type) else []


def model_in(annotation) -> Any:
    """The pydantic model inside a field's annotation (``Optional[X]``, ``list[X]``...), or
    None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = model_in(arg)
        if found is not None:
            return found
    return None
