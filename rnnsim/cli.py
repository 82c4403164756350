"""The ``rnnsim`` command line. It calls the Python API only.

The API (numba, numpy and the kernels) is imported inside the commands that use it, so
``--help``, ``--version`` and usage errors answer without loading it.
"""
from __future__ import annotations

import functools
import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .devices import DEVICES
from .errors import RnnsimError

if TYPE_CHECKING:
    import numpy as np

    from .network import Network, RunResult



def reports_errors(fn):
    """Show an ``RnnsimError`` as a one-paragraph message and exit 1, without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RnnsimError as exc:
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from None

    return wrapper


def show_version(ctx: click.Context, param, value: bool) -> None:
    """``--version``: print the installed version and exit (the package metadata is read
    only then)."""
    if value and not ctx.resilient_parsing:
        from .version import installed_version

        click.echo(f"rnnsim, version {installed_version()}")
        ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=show_version, help="Show the version and exit.")
@click.option("--skip-broken-plugins", is_flag=True,
              help="Skip plugins that fail to load, with a warning, instead of stopping.")
def cli(skip_broken_plugins):
    """Simulate recurrent neural networks: units (p) and timesteps (T) are independent."""
    if skip_broken_plugins:
        from . import plugins as plugins_mod

        os.environ["RNNSIM_SKIP_BROKEN_PLUGINS"] = "1"
        plugins_mod.reset()
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"Warning: {message}\n"


CONFIG = click.argument("config", type=click.Path(dir_okay=True, path_type=Path))
QUIET = click.option("--quiet", "-q", is_flag=True,
                     help="Show no progress (shown on stderr only when it is a terminal).")


@cli.command()
@CONFIG
@click.option("--input", "input_path", type=click.Path(path_type=Path),
              help="Input array (.npy, .npz with array 'x', or .csv of one sequence).")
@click.option("--output", "output_path", type=click.Path(path_type=Path),
              help="Write output, final states and y to this .npz file. A .npy path streams "
                   "the run to disk a chunk of steps at a time, in bounded memory: PATH.npy "
                   "the output, PATH.y.npy a per-step head's y, PATH.state.npz the final "
                   "states (see docs/reliability.md).")
@click.option("--chunk-steps", type=click.IntRange(min=1),
              help="With --output PATH.npy: steps per chunk [default: about 64 MiB of "
                   "buffers].")
@click.option("--resume", is_flag=True,
              help="With --output PATH.npy: continue an interrupted run from its last "
                   "complete chunk (same config, weights, input and options), else start.")
@click.option("--nonfinite", type=click.Choice(["raise", "warn", "ignore"]),
              help="When a state becomes NaN/inf: stop with the layer, step, unit and row "
                   "where it first happened, warn, or ignore it [default: raise; ignore with "
                   "--allow-nonfinite].")
@click.option("--timesteps", "-T", type=click.IntRange(min=1),
              help="T for the drawn input [default: the config's run.timesteps].")
@click.option("--batch", "-B", type=click.IntRange(min=1),
              help="B for the drawn input [default: the config's run.batch].")
@click.option("--seed", type=click.IntRange(min=0),
              help="Seed of the weights (for a config) and of the drawn input "
                   "[default: network.seed].")
@click.option("--save", "save_path", type=click.Path(path_type=Path),
              help="Also save the model (config and weights) into this folder.")
@click.option("--allow-nonfinite", is_flag=True, help="Run even if the input holds NaN/inf.")
@click.option("--lengths", callback=lambda ctx, param, value: _int_list(value, "--lengths"),
              help="Steps of each sequence, comma separated (e.g. 20,13,7): outputs past a "
                   "sequence's end are zero. Also read from an array 'lengths' in an --input .npz.")
@click.option("--device", type=click.Choice(DEVICES),
              help="Where the recurrence runs; cuda needs an NVIDIA GPU and rnnsim[cuda] "
                   "[default: the config's network.device].")
@click.option("--teacher", "teacher_path", type=click.Path(path_type=Path),
              help="Targets fed back in place of the head's predictions (teacher forcing) into "
                   "a top esn layer with output feedback (.npy, .npz with array 'y', or .csv).")
@click.option("--generate", "generate_steps", type=click.IntRange(min=1),
              help="Then run this many steps in closed loop from the run's final state (the "
                   "head's output is the next input); written to --output as generated_output "
                   "and generated_y.")
@click.option("--fast-math/--exact-math", default=None,
              help="Evaluate tanh and sigmoid with fast approximations in the CPU kernels "
                   "(error bound: docs/performance.md) [default: the config's "
                   "network.fast_math].")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead of text.")
@QUIET
@reports_errors
def run(config, input_path, output_path, chunk_steps, resume, nonfinite, timesteps, batch, seed,
        save_path, allow_nonfinite, lengths, device, teacher_path, generate_steps, fast_math,
        as_json, quiet):
    """Run a network from a YAML config, a saved model folder or another framework's file
    (.onnx, .keras, ...: the importer is picked by the file's type)."""
    imported = import_by_type(config)
    if imported is not None and not _is_network(imported):
        return run_graph(imported, config, input_path, output_path, allow_nonfinite, as_json, {
            "--chunk-steps": chunk_steps, "--resume": resume, "--nonfinite": nonfinite,
            "--timesteps": timesteps, "--batch": batch, "--seed": seed, "--save": save_path,
            "--lengths": lengths, "--device": device, "--teacher": teacher_path,
            "--generate": generate_steps, "--fast-math/--exact-math": fast_math is not None})
    if input_path is not None and (timesteps or batch):
        raise click.UsageError("--timesteps/--batch size the drawn input; with --input the "
                               "file's shape decides them.")
    streamed = output_path is not None and output_path.suffix.lower() == ".npy"
    if (chunk_steps or resume) and not streamed:
        raise click.UsageError("--chunk-steps and --resume apply to a run streamed to disk: "
                               "give --output PATH.npy.")
    if streamed and (teacher_path or generate_steps):
        raise click.UsageError("--teacher and --generate run in memory: give --output PATH.npz.")
    from . import longrun, progress
    from .io import read_array, read_optional_array, write_npz
    from .tasks import draw_input, drawn_input

    if imported is None:
        net = _network(config, seed, device)
    else:
        from .network import on_device

        net = on_device(imported, device)
    if fast_math is not None:
        net.fast_math = fast_math
    if input_path is None:
        x = drawn_input(net, timesteps, batch, seed) if streamed else draw_input(
            net, timesteps, batch, seed)
    else:
        x = read_array(input_path, mmap=streamed)
        if lengths is None and input_path.suffix.lower() == ".npz":
            lengths = read_optional_array(input_path, "lengths")
    teacher = None if teacher_path is None else read_array(teacher_path, name="y")
    with progress.shown("run", quiet=quiet) as bar:
        load_seconds = warm_up(net, x, lengths, teacher)
        start = time.perf_counter()
        options = {"lengths": lengths, "check_finite": not allow_nonfinite,
                   "nonfinite": nonfinite, "progress": bar}
        if streamed:
            result = net.run(x, out=output_path, chunk_steps=chunk_steps, resume=resume,
                             **options)
        else:
            result = net.run(x, teacher=teacher, **options)
        seconds = time.perf_counter() - start
        arrays = {} if streamed else result_arrays(net, result)
        if generate_steps is not None:
            generated = net.generate(generate_steps, result.state)
            arrays.update(generated_output=generated.output, generated_y=generated.y)
    if output_path is not None and not streamed:
        write_npz(output_path, arrays)
    if save_path is not None:
        net.save(save_path)
    summary = run_summary(net, config, x.shape, result, seconds, load_seconds)
    if generate_steps is not None:
        summary["generated_y_shape"] = list(arrays["generated_y"].shape)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        print_run(net, summary)
        if generate_steps is not None:
            click.echo(f"generated_y  {tuple(summary['generated_y_shape'])}  {generate_steps} "
                       "closed-loop steps from the final state")
    if output_path is not None and not as_json:
        written = ([p for p in longrun.outputs(output_path).values() if p.exists()]
                   if streamed else [output_path])
        click.echo(f"wrote {', '.join(map(str, written))}")


def warm_up(net: Network, x, lengths, teacher) -> float | None:
    """Run the first step of ``x`` twice (same batch, dtype, device and options) and return
    the seconds: this process's one-time kernel load or compilation (the second call loads
    the check of the packed weights), so that the run timed next measures the steady steps
    only. None if that step fails; the real run then reports the mistake with the whole
    input's shapes."""
    import numpy as np

    from . import longrun

    if len(x.shape) not in (2, 3) or 0 in x.shape:
        return None
    time_axis = 1 if net.config.network.batch_first and len(x.shape) == 3 else 0
    first = (x.read(0, 1) if isinstance(x, longrun.DrawnInput)
             else np.take(x, [0], axis=time_axis))
    batch = 1 if len(x.shape) == 2 else x.shape[1 - time_axis]
    start = time.perf_counter()
    try:
        options = {"lengths": None if lengths is None else [1] * batch, "check_finite": False,
                   "nonfinite": "ignore",
                   "teacher": None if teacher is None else np.take(teacher, [0], axis=time_axis)}
        for _ in range(2):
            net.run(first, **options)
    except (RnnsimError, IndexError):
        return None
    return time.perf_counter() - start


def import_by_type(path: Path):
    """The model another framework's file imports as, by its type; None for a YAML config or
    a model folder (or a file no importer claims, read as a YAML config)."""
    if path.is_dir() or path.suffix.lower() in (".yaml", ".yml"):
        return None
    from .importers import find_importer, import_file

    entry = find_importer(path)
    return None if entry is None else import_file(path, entry.name)


def _is_network(model) -> bool:
    from .network import Network

    return isinstance(model, Network)


def run_graph(model, path: Path, input_path, output_path, allow_nonfinite, as_json,
              others) -> None:
    """``rnnsim run MODEL.onnx``: an imported graph on the arrays of --input, outputs by
    name."""
    from .io import read_array, read_npz, write_npz

    given = [option for option, value in others.items() if value]
    if given:
        raise click.UsageError(f"{', '.join(given)} do(es) not apply to {path}: a graph runs "
                               "on the arrays of --input as they are.")
    if input_path is None:
        raise click.UsageError(f"{path} needs --input FEEDS.npz, one array per graph input, "
                               "saved under the input's name.")
    input_names = [row["name"] for row in model.describe()["inputs"]]
    if input_path.suffix.lower() == ".npz":
        feeds = read_npz(input_path)
    elif len(input_names) == 1:
        feeds = {input_names[0]: read_array(input_path)}
    else:
        raise click.UsageError(f"{path} has inputs {input_names}: give an .npz with one "
                               "array per input name.")
    start = time.perf_counter()
    outputs = model.run(feeds, check_finite=not allow_nonfinite)
    seconds = time.perf_counter() - start
    if output_path is not None:
        write_npz(output_path, outputs)
    shapes = lambda arrays: {n: {"dtype": str(v.dtype), "shape": list(v.shape)}  # noqa: E731
                             for n, v in arrays.items()}
    summary = {"source": str(path), "inputs": shapes(feeds), "outputs": shapes(outputs),
               "seconds": seconds}
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    recurrent = model.describe().get("recurrent", ())
    click.echo(f"{path}: {len(recurrent)} recurrent node(s) on rnnsim kernels")
    for kind in ("inputs", "outputs"):
        for name, row in summary[kind].items():
            click.echo(f"  {kind[:-1]:<7} {name:<16} {row['dtype']:<8} {tuple(row['shape'])}")
    click.echo(f"ran in {seconds * 1e3:.3f} ms, including this process's one-time kernel load "
               "or compilation")
    if output_path is not None:
        click.echo(f"wrote {output_path}")


def info_graph(model, path: Path, as_json: bool) -> None:
    """``rnnsim info MODEL.onnx``: inputs, outputs and every recurrent node with its shapes."""
    info = model.describe()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"{path}: ONNX opset {info['opset']}, {len(info['recurrent'])} recurrent node(s)")
    for row in info["inputs"]:
        dims = "unknown" if row["shape"] is None else "(" + ", ".join(
            "?" if d is None else str(d) for d in row["shape"]) + ")"
        click.echo(f"  input  {row['name']:<16} {row['dtype']:<8} {dims}")
    click.echo(f"  outputs {', '.join(info['outputs'])}")
    for node in info["recurrent"]:
        click.echo(f"{node['op']} '{node['name']}': direction {node['direction']}, hidden_size "
                   f"{node['hidden_size']}, input_size {node['input_size']}, layout "
                   f"{node['layout']}, {node['dtype']}, clip {node['clip']}")
        for direction, names in zip(("forward", "reverse"), node["activations"]):
            if node["direction"] == "reverse":
                direction = "reverse"
            click.echo(f"  activations ({direction}): {', '.join(names)}")
        weights = "  ".join(f"{key} {tuple(shape)}" for key, shape in node["weights"].items())
        click.echo(f"  weights: {weights or 'computed by the graph'}")
    for fused in info["fused"]:
        click.echo(f"fused: {fused['cell']} ({fused['activation']}) x {fused['steps']} steps, "
                   f"input_size {fused['input_size']}, hidden_size {fused['hidden_size']}, "
                   f"{fused['nodes']} nodes '{fused['first_node']}'..'{fused['last_node']}' run "
                   "as one kernel call")
    for label, reference in (("rnnsim's NumPy", False), ("onnx.reference", True)):
        glue = ", ".join(f"{op} x{count}" for op, count in sorted(info["ops"].items())
                         if op not in ("RNN", "LSTM", "GRU") and not op.startswith("Fused")
                         and (op in info["reference_ops"]) == reference)
        click.echo(f"other operators ({label}): {glue or 'none'}")


def _int_list(value: str | None, option: str) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(part) for part in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"{option} takes integers separated by commas, got "
                                 f"{value!r}.") from None


def _network(path: Path, seed: int | None, device: str | None = None) -> Network:
    """The network of a YAML config (its seed replaced by ``seed``) or a model folder."""
    from . import config as config_mod
    from .network import Network, open_native

    if seed is None or path.is_dir():
        return open_native(path, device)
    data = config_mod.read_yaml(path)
    data.setdefault("network", {})
    if isinstance(data["network"], dict):
        data["network"]["seed"] = seed
    return Network.from_config(data, device)


def result_arrays(net: Network, result: RunResult) -> dict[str, np.ndarray]:
    """The arrays written by ``--output``: output, final_<layer>_<state> for every state of
    every layer (``final_0_h``, an LSTM's ``final_0_c``...), y and the head's extras."""
    arrays = {"output": result.output, **result.state.arrays("final")}
    if result.y is not None:
        arrays["y"] = result.y
        arrays.update(net.head.extra_outputs(result.y))
    return arrays


def fingerprint(net: Network) -> str:
    """A short hash of every weight: equal fingerprints mean the very same weights."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    for name in sorted(net.params):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(net.params[name]).tobytes())
    return digest.hexdigest()[:16]


def run_summary(net: Network, source, x_shape, result: RunResult, seconds: float,
                load_seconds: float | None = None) -> dict:
    batch_first = net.config.network.batch_first
    T = x_shape[1] if (batch_first and len(x_shape) == 3) else x_shape[0]
    return {
        "source": str(source),
        "input_shape": list(x_shape),
        "timesteps": int(T),
        "device": net.device,
        "output_shape": list(result.output.shape),
        "final_shapes": [list(f.shape) for f in result.final],
        "y_shape": None if result.y is None else list(result.y.shape),
        "parameters": [dict(row, shape=list(row["shape"])) for row in net.parameter_table()],
        "weights_sha256": fingerprint(net),
        "load_seconds": load_seconds,
        "seconds": seconds,
        "us_per_step": seconds / T * 1e6,
    }


def print_run(net: Network, s: dict) -> None:
    cfg = net.config.network
    layout = "(B, T, k)" if cfg.batch_first else "(T, B, k)"
    if len(s["input_shape"]) == 2:
        layout = "(T, k)"
    click.echo(f"network {s['source']}: k = input_size = {cfg.input_size}, "
               f"{len(cfg.layers)} layer(s), dtype {cfg.dtype}, device {net.device}")
    print_equations(net)
    print_parameters(net)
    click.echo(f"input x      {tuple(s['input_shape'])}  {layout}: T = {s['timesteps']} "
               "timesteps")
    click.echo(f"output       {tuple(s['output_shape'])}  top layer's a_t at every step")
    for i, shape in enumerate(s["final_shapes"]):
        click.echo(f"final[{i}]     {tuple(shape)}  layer {i}'s last state (directions, B, p)")
    if s["y_shape"] is not None:
        click.echo(f"y            {tuple(s['y_shape'])}  head '{cfg.head.name}'")
    click.echo(f"weights sha256 {s['weights_sha256']}: the same weights run any number of "
               "timesteps")
    if s["load_seconds"] is not None:
        click.echo(f"kernel load or compilation {s['load_seconds'] * 1e3:.1f} ms (two "
                   "one-step runs first, once per process)")
    click.echo(f"ran in {s['seconds'] * 1e3:.3f} ms ({s['us_per_step']:.2f} µs per step)"
               + (", including this process's one-time kernel load or compilation"
                  if s["load_seconds"] is None else ""))


def print_equations(net: Network) -> None:
    for i, layer in enumerate(net.layers):
        act = layer.activations[0].name
        way = ", bidirectional" if layer.directions == 2 else ""
        click.echo(f"  layer {i}: {layer.name}, p = {layer.units} units{way}, f_a = {act}: "
                   f"{layer.equation}")
    if net.head is not None:
        click.echo(f"  head: {net.config.network.head.name}, {net.head.units} outputs, f_y = "
                   f"{net.head.activation.name}: {net.head.equation}")


def print_parameters(net: Network) -> None:
    click.echo("parameters (shapes from k and p only; none depends on T):")
    table = net.parameter_table()
    for row in table:
        shape = " x ".join(map(str, row["shape"]))
        sparse = (f"  nonzeros stored (sparse, {row['count'] / math.prod(row['shape']):.1%})"
                  if row["sparse"] else "")
        click.echo(f"  {row['name']:<22} {row['symbol']:<14} {shape:<12} {row['count']:>9,}"
                   + sparse)
    total = net.parameter_count()
    click.echo(f"  {'total':<22} {'':<14} {'':<12} {total:>9,}")


@cli.command()
@CONFIG
@reports_errors
def validate(config):
    """Check a config (keys, types, sizes, plugin names) without running it."""
    from .config import origin_of
    from .network import Network, imported_network, load
    from .sweep import parse_config

    imported = import_by_type(config)
    if imported is not None:
        net = imported_network(imported, config)
    elif config.is_dir():
        net = load(config)
    else:  # a YAML config, read once, its sweep: section checked too
        net = Network(parse_config(config), origin=origin_of(config))
    click.echo(f"{config}: valid ({len(net.layers)} layer(s), "
               f"{net.parameter_count():,} parameters)")


@cli.command()
@CONFIG
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
@reports_errors
def info(config, as_json):
    """Show every layer's parameter shapes and counts: none depends on the timesteps T."""
    imported = import_by_type(config)
    if imported is not None and not _is_network(imported):
        return info_graph(imported, config, as_json)
    from .network import open_native

    net = open_native(config) if imported is None else imported
    if as_json:
        rows = [dict(r, shape=list(r["shape"])) for r in net.parameter_table()]
        layers = [{"cell": l.name, "units": l.units, "input_size": l.input_size,
                   "directions": l.directions, "activation": l.activations[0].name}
                  for l in net.layers]
        click.echo(json.dumps({"layers": layers, "parameters": rows}, indent=2))
        return
    cfg = net.config.network
    click.echo(f"{config}: k = input_size = {cfg.input_size}, dtype {cfg.dtype}")
    print_equations(net)
    print_parameters(net)
    for i, layer in enumerate(net.layers):
        click.echo(f"  layer {i}: {net.parameter_count(f'layers.{i}.'):,} parameters")
    click.echo("The recurrence runs once per timestep with these same weights, so T is set "
               "by the input, not by the network.")


@cli.command("bench")
@click.option("--cells", default="elman,lstm,gru,esn", show_default=True,
              help="Cells of the matrix, comma separated (esn rows run against reservoirpy).")
@click.option("--dtype", "dtypes", type=click.Choice(["float32", "float64", "both"]),
              default="both", help="Precision of the rows.")
@click.option("--quick", is_flag=True, help="Ten times shorter sequences and 3 rounds.")
@click.option("--repeats", type=click.IntRange(min=1),
              help="Timed rounds per row [default: 9, 3 with --quick].")
@click.option("--cold-start", is_flag=True,
              help="Also time the first net.run of a fresh process, empty and warm cache.")
@click.option("--streaming", is_flag=True,
              help="Also time one streaming step at B = 1: the compiled net.stepper against a "
                   "PyTorch cell and a one-step ONNX Runtime session.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the results to this JSON file.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw a bar chart into this PNG file (needs matplotlib).")
@click.option("--markdown", is_flag=True, help="Print the final table as Markdown.")
@QUIET
@reports_errors
def bench_command(cells, dtypes, quick, repeats, cold_start, streaming, json_path, plot_path,
                  markdown, quiet):
    """Time rnnsim against every installed peer (PyTorch, ONNX Runtime, reservoirpy) on the CPU.

    Same process, same threads (numba's), same inputs; outputs are checked to agree first.
    Prints µs per step, peer / rnnsim ratios and rnnsim's GFLOP/s against this machine's
    GEMM peak; for esn rows also the GB/s the sparse kernel streams against a plain sum's
    over as many bytes (see docs/performance.md).
    """
    from . import bench, progress
    from .io import write_atomic

    chosen = ("float32", "float64") if dtypes == "both" else (dtypes,)
    names = [c.strip() for c in cells.split(",") if c.strip()]
    total = len(bench.rows_of(names, chosen, quick))
    click.echo(bench.HEADER)
    with progress.shown("bench", unit="rows", quiet=quiet) as bar:
        done = []
        if bar is not None:
            bar(0, total)

        def row_done(line: str) -> None:
            done.append(line)
            if bar is None:
                click.echo(line)
                return
            bar(len(done), total)
            bar.above(lambda: click.echo(line))

        results = bench.run_matrix(names, chosen, quick=quick, repeats=repeats,
                                   progress=row_done)
    if cold_start:
        results["cold_start"] = bench.cold_start()
        for entry in results["cold_start"]:
            click.echo(f"cold start {entry['cell']:>5} ({entry['cache']}): import "
                       f"{entry['import_s']:.2f} s, first run {entry['first_run_s']:.2f} s")
    click.echo()
    click.echo(bench.markdown(results) if markdown else bench.table(results))
    if streaming:
        from . import streambench

        results["streaming"] = streambench.streaming(rounds=30 if quick else 200)
        click.echo("\nOne streaming step, B = 1, float32, one thread (µs per call, the "
                   "fastest of short rounds; ratios > 1: rnnsim faster):")
        click.echo(streambench.streaming_table(results["streaming"]))
    if json_path is not None:
        write_atomic(json_path, lambda tmp: tmp.write_text(bench.to_json(results)))
        click.echo(f"wrote {json_path}")
    if plot_path is not None:
        bench.plot(results, plot_path)
        click.echo(f"wrote {plot_path}")


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
@reports_errors
def plugins_command(as_json):
    """List every registered cell, activation, initializer, head, metric and importer with its
    package."""
    from . import plugins as plugins_mod

    rows = plugins_mod.describe()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for kind in plugins_mod.KINDS:
        click.echo(f"{kind.attribute}:")
        for row in (r for r in rows if r["kind"] == kind.name):
            params = ", ".join([*(f"{k}={v}" for k, v in row.get("params", {}).items()),
                                *row.get("suffixes", ())])
            package = f"{row['package']} {row['version']}".strip()
            click.echo(f"  {row['name']:<18} {package:<16} {row['description']}"
                       + (f" [{params}]" if params else ""))
            if row["clashes_with"]:
                click.echo(f"  {'':<18} CLASH: also registered by "
                           f"{', '.join(row['clashes_with'])}; using '{row['name']}' is an "
                           "error until one is uninstalled or blocked (RNNSIM_DISABLE_PLUGINS)")


@cli.command("schema")
@click.option("--output", "-o", "output_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the schema to this file (e.g. rnnsim.schema.json) instead of "
                   "printing it.")
@reports_errors
def schema_command(output_path):
    """Print the JSON Schema of config files, built from the installed plugins.

    Editors validate and complete YAML with it: put the line
    `# yaml-language-server: $schema=rnnsim.schema.json` (a path or URL) at the top of a config.
    """
    from . import schema

    if output_path is None:
        click.echo(schema.dumps(schema.json_schema()), nl=False)
        return
    schema.write(output_path)
    click.echo(f"wrote {output_path}", err=True)


@cli.command()
@CONFIG
@click.option("--timesteps", "-T", "steps", type=click.IntRange(min=1), multiple=True,
              help="Sequence lengths to run the same network on [default: run.timesteps and "
                   "10 times that].")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path),
              help="Draw the unrolled loop and the hidden-state traces to this PNG/SVG file "
                   "(needs matplotlib: pip install 'rnnsim[plot]').")
@reports_errors
def explain(config, steps, plot_path):
    """Explain each layer's equations and shapes, then run it on two lengths T."""
    from . import explain as explain_mod
    from .network import open_network

    net = open_network(config)
    steps = steps or (net.config.run.timesteps, 10 * net.config.run.timesteps)
    for line in explain_mod.describe(net):
        click.echo(line)
    runs = explain_mod.run_lengths(net, steps)
    for line in explain_mod.describe_runs(net, runs):
        click.echo(line)
    if plot_path is not None:
        explain_mod.plot(net, runs, plot_path)
        click.echo(f"wrote {plot_path}")


@cli.command("new-plugin")
@click.argument("name")
@click.option("--directory", "-d", type=click.Path(file_okay=False, path_type=Path),
              default=Path("."), help="Where to create the package folder.")
@reports_errors
def new_plugin(name, directory):
    """Create a ready-to-install plugin package rnnsim-NAME with one activation and a test."""
    from .scaffold import scaffold

    folder = scaffold(name, directory)
    click.echo(f"created {folder}: `pip install -e {folder}` and run `pytest {folder}`")


class ImportGroup(click.Group):
    """`rnnsim import FORMAT`: one command per registered importer (``register_importers``)."""

    def list_commands(self, ctx):
        from .plugins import get_plugins

        return sorted(entry.name for entry in get_plugins().importers)

    def get_command(self, ctx, name):
        from .importers import importer

        try:
            return import_command(importer(name))
        except RnnsimError as exc:
            raise click.UsageError(str(exc)) from None


OPTION_TYPES = {"str": click.STRING, "int": click.INT, "float": click.FLOAT,
                "path": click.Path(dir_okay=False, path_type=Path)}


def _import_option(key: str, spec: dict):
    """The click option of one importer option: ``--key-name``, or ``--flag/--no-flag``."""
    flag = "--" + key.replace("_", "-")
    kind = spec.get("type", "str")
    choices = spec.get("choices")
    return click.option(f"{flag}/--no-{flag[2:]}" if kind == "bool" else flag, key,
                        help=spec["help"], default=spec.get("default"),
                        required=bool(spec.get("required")),
                        type=click.Choice(choices, case_sensitive=False) if choices else
                        None if kind == "bool" else OPTION_TYPES[kind])


def import_command(entry) -> click.Command:
    """The `rnnsim import NAME` command of a registered importer."""

    @reports_errors
    def callback(path, output_path, quiet, **options):
        from . import progress
        from .importers import import_file

        with progress.shown("import", quiet=quiet):
            net = import_file(path, entry.name, **{k: v for k, v in options.items()
                                                   if v is not None})
            if not _is_network(net):
                raise click.UsageError(f"'{path}' imports as a graph ({entry.name}), which runs "
                                       f"as it is: `rnnsim run {path} --input FEEDS.npz`. Only "
                                       "networks are saved as model folders.")
            net.save(output_path)
        count = net.parameter_count()
        cells = ", ".join(layer.name for layer in net.layers)
        head = f" and a {net.config.network.head.name} head" if net.head is not None else ""
        click.echo(f"wrote {output_path}: {len(net.layers)} layer(s) ({cells}){head}, "
                   f"{count:,} parameters, dtype {net.dtype}; run it with `rnnsim run "
                   f"{output_path}`")

    params = [click.argument("path", type=click.Path(dir_okay=False, path_type=Path)),
              *(_import_option(key, spec) for key, spec in entry.options.items()),
              click.option("--output", "-o", "output_path", required=True,
                           type=click.Path(file_okay=False, path_type=Path),
                           help="Model folder to write (config.yaml and weights.npz)."),
              QUIET]
    for decorator in reversed(params):
        callback = decorator(callback)
    package = f"{entry.source.package} {entry.source.version}".strip()
    return click.command(entry.name, short_help=entry.description,
                         help=f"Import {entry.name} files into a model folder: "
                              f"{entry.description} (importer '{entry.name}' from "
                              f"{package}).")(callback)


@cli.group("import", cls=ImportGroup)
def import_group():
    """Turn another framework's trained weights into an rnnsim model folder."""


TASKS = ("mackey-glass",)


def _fit_data(net: Network, input_path, target_path, task, timesteps):
    """(u, y, first test step or None) from files, or generated for ``task``."""
    if task is not None:
        if input_path is not None or target_path is not None:
            raise click.UsageError("--task generates the data; leave out --input/--target.")
        from .tasks import mackey_glass_task

        return mackey_glass_task(net, timesteps)
    if input_path is None or target_path is None:
        raise click.UsageError("give --input and --target, or --task.")
    from .io import read_array

    return read_array(input_path), read_array(target_path, name="y"), None


@cli.command("fit")
@CONFIG
@click.option("--input", "input_path", type=click.Path(path_type=Path),
              help="Input u (.npy, .npz with array 'x', or .csv of one sequence).")
@click.option("--target", "target_path", type=click.Path(path_type=Path),
              help="Target y, same steps as u (.npy, .npz with array 'y', or .csv).")
@click.option("--task", type=click.Choice(TASKS),
              help="Generate the data instead: one-step-ahead forecasting of the series, "
                   "trained on the first 80% of the steps, tested on the rest.")
@click.option("--timesteps", "-T", type=click.IntRange(min=2),
              help="Steps of the generated task [default: the config's run.timesteps].")
@click.option("--washout", type=click.IntRange(min=0), default=0,
              help="Leading steps left out of the regression.")
@click.option("--ridge", type=click.FloatRange(min=0), default=1e-6,
              help="L2 penalty on the readout weights (never on its bias).")
@click.option("--output", "-o", "model_path", type=click.Path(path_type=Path),
              help="Save the trained model (config and weights) into this folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
@QUIET
@reports_errors
def fit_command(config, input_path, target_path, task, timesteps, washout, ridge, model_path,
                as_json, quiet):
    """Train the ridge readout of an echo-state network and report its NRMSE.

    With output feedback the readout is fitted on teacher-forced states (the target fed back)
    and scored on a free run (its own outputs fed back).
    """
    from . import progress
    from .network import open_network
    from .reservoir import fit_and_score, has_feedback

    net = open_network(config)
    u, y, split = _fit_data(net, input_path, target_path, task, timesteps)
    with progress.shown("fit", quiet=quiet):  # the time elapsed: one run, one solve
        fitted = fit_and_score(net, u, y, split, washout=washout, ridge=ridge)
    seconds, end = fitted.pop("fit_seconds"), len(u) if split is None else split
    scores = {"source": str(config), "timesteps": int(len(u)), "washout": washout,
              "ridge": ridge, "seconds": seconds, "feedback": has_feedback(net), **fitted}
    if model_path is not None:
        net.save(model_path)
        scores["model"] = str(model_path)
    if as_json:
        click.echo(json.dumps(scores, indent=2))
        return
    click.echo(f"fitted {config} on {end} steps (washout {washout}, ridge {ridge:g}) in "
               f"{seconds * 1e3:.1f} ms")
    if scores["feedback"]:
        click.echo("scored on a free run: the head's own outputs fed back")
    click.echo(f"train NRMSE {scores['train_nrmse']:.3e}")
    if split is not None:
        click.echo(f"test NRMSE  {scores['test_nrmse']:.3e} (steps {split}..{len(u)})")
    if model_path is not None:
        click.echo(f"saved {model_path}; predict with `rnnsim run {model_path} --input U`")


ANALYZE_STEPS = 1000


@cli.command("analyze")
@CONFIG
@click.option("--input", "input_spec", metavar="random|zeros|NUMBER|PATH", default="random",
              help="The one input every analysis follows (exponents, gradient norms, the "
                   "fixed-point starts, the echo-state check): drawn N(0, 1) noise (random), "
                   "zeros, a constant (NUMBER, every feature; the fixed points are then "
                   "searched under it), or a file (T, k).")
@click.option("--target", "target_path", type=click.Path(path_type=Path),
              help="Target y: fit the ridge readout on (u, y) and report its NRMSE (needs "
                   "--input PATH).")
@click.option("--washout", type=click.IntRange(min=0), default=0,
              help="Leading steps left out of the regression and the NRMSE.")
@click.option("--ridge", type=click.FloatRange(min=0), default=1e-6,
              help="L2 penalty on the readout weights.")
@click.option("--steps", type=click.IntRange(min=1),
              help="Steps analysed after the warm-up: the drawn input's length, or with "
                   "--input PATH the first WARMUP + STEPS steps of the file (and of --target) "
                   f"[default: {ANALYZE_STEPS} steps, or the whole file].")
@click.option("--warmup", type=click.IntRange(min=0), default=100,
              help="Leading steps before the Lyapunov exponents are averaged.")
@click.option("--exponents", type=click.IntRange(min=1), default=10,
              help="How many of the largest Lyapunov exponents to compute (at most the "
                   "state size).")
@click.option("--starts", type=click.IntRange(min=1), default=16,
              help="Starts of the fixed-point search: states of the trajectory plus noise.")
@click.option("--start-states", "start_path", type=click.Path(path_type=Path),
              help="Start states (S, n) of layer 0's fixed-point search, instead of --starts.")
@click.option("--fixed-points-out", "points_path",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Write the fixed points to this .npz: per layer and direction "
                   "layer{i}.{direction}.states, .eigenvalues, .index (unstable directions), "
                   ".stable, .q, .residual, .kind.")
@click.option("--horizon", type=click.IntRange(min=1), default=100,
              help="Steps back from the last one over which the gradient norms "
                   "|ds_T/ds_t| are computed.")
@click.option("--seed", type=click.IntRange(min=0), default=0,
              help="Seed of the drawn input, the initial states and the fixed-point starts.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@QUIET
@reports_errors
def analyze_command(config, input_spec, target_path, washout, ridge, steps, warmup, exponents,
                    starts, start_path, points_path, horizon, seed, as_json, quiet):
    """Print the dynamics of every layer (Lyapunov exponents, fixed points, gradient norms),
    and for a reservoir its spectral radii, memory capacity and echo-state check."""
    import numpy as np

    from . import dynamics, progress, reservoir
    from .tasks import draw_sequence
    from .io import read_array, write_npz
    from .network import open_network

    net = open_network(config)
    length = warmup + (steps or ANALYZE_STEPS)
    constant, u = None, None
    if input_spec == "random":
        x, label = draw_sequence(net, length, seed), f"drawn N(0, 1) input (seed {seed})"
    elif input_spec == "zeros" or _is_number(input_spec):
        constant = 0.0 if input_spec == "zeros" else float(input_spec)
        x = np.full((length, net.input_size), constant)
        label = "zero input" if constant == 0 else f"constant input {constant:g}"
    else:
        u = read_array(Path(input_spec))
        if steps is not None:
            u = _first_steps(u, warmup, steps, input_spec)
        x, label = u, f"the input in {input_spec}"
    if target_path is not None and u is None:
        raise click.UsageError("--target needs --input PATH.")
    y = None if target_path is None else read_array(target_path, name="y")
    if y is not None and steps is not None:
        y = _first_steps(y, warmup, steps, target_path)
    start_states = None if start_path is None else read_array(start_path, name="start states")
    report = {}
    with progress.shown("analyze", quiet=quiet) as bar:
        if any(layer.reservoir for layer in net.layers):
            report = reservoir.analyze(net, u, y, washout=washout, ridge=ridge,
                                       probe=np.asarray(x, net.dtype))
        report["dynamics"] = dynamics.analyze(net, x, warmup=warmup, starts=starts,
                                              exponents=exponents, horizon=horizon, seed=seed,
                                              x_const=constant, start_states=start_states,
                                              input_label=label, progress=bar)
    if points_path is not None:
        write_npz(points_path, dynamics.fixed_point_file(report["dynamics"]))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    if "echo_state" in report:
        print_reservoir(report, label)
    for row in report["dynamics"]:
        print_dynamics(row, label)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _first_steps(array, warmup: int, steps: int, path: Path):
    """The first ``warmup + steps`` steps of an array read from ``path`` (--steps with
    --input); a UsageError if it is shorter."""
    if len(array) < warmup + steps:
        raise click.UsageError(f"--warmup {warmup} + --steps {steps} need {warmup + steps} "
                               f"steps; {path} has {len(array)}.")
    return array[:warmup + steps]


def print_reservoir(report: dict, source: str) -> None:
    for row in report["layers"]:
        click.echo(f"layer {row['layer']}: {row['units']} units, spectral radius "
                   f"{row['spectral_radius']:.6g}, effective (with leak) "
                   f"{row['effective_spectral_radius']:.6g}")
    held = report["memory_curve"]["test_fraction"]
    click.echo(f"memory capacity {report['memory_capacity']:.4g} ("
               + (f"held out: scored on {held:.0%} of the steps" if held else "in-sample")
               + ")")
    esp = report["echo_state"]
    click.echo(f"echo-state property: {'holds' if esp['holds'] else 'NOT shown'} (trial "
               f"spread {esp['initial_distance']:.3g} -> {esp['final_distance']:.3g} over "
               f"{esp['steps']} steps of {source})")
    if "nrmse" in report:
        click.echo(f"NRMSE {report['nrmse']:.4e}")


def _number(value, missing: str = "-inf") -> str:
    """A report's number; None stands for a non-finite value (``missing``)."""
    return missing if value is None else format(value, ".4g")


def print_dynamics(row: dict, source: str) -> None:
    from . import dynamics

    way = "" if row["direction"] == "forward" else ", reverse direction"
    lyap = row["lyapunov"]
    click.echo(f"dynamics of layer {row['layer']} ({row['cell']}{way}, {row['state_size']} "
               f"state variables), {lyap['steps']} steps of {source} after {lyap['warmup']} "
               f"warm-up steps, from one initial state ({row['initial_state']}) for every "
               "section:")
    largest = lyap["largest"]
    verdict = ("nearby trajectories separate: chaotic" if largest is not None and largest > 0
               else "nearby trajectories converge")
    click.echo(f"  Lyapunov exponents (per step): "
               f"{', '.join(_number(e) for e in lyap['exponents'])}")
    click.echo(f"  largest {_number(largest)}: {verdict}")
    fixed = row["fixed_points"]
    points = fixed["points"]
    kinds = [p["kind"] for p in points]
    stable = sum(p["stable"] for p in points if p["kind"] == "fixed")
    under = ("zero input" if fixed["input"] == "zero"
             else f"constant input {', '.join(format(v, 'g') for v in fixed['input'])}")
    click.echo(f"  fixed points under {under} ({fixed['starts']} starts from the trajectory): "
               f"{kinds.count('fixed')} fixed ({stable} stable), {kinds.count('slow')} slow")
    for p in points:
        marginal = abs(p["spectral_radius"] - 1) <= dynamics.STABILITY_MARGIN
        stability = "marginal" if marginal else "stable" if p["stable"] else "unstable"
        click.echo(f"    {p['kind']:<5} {stability:<8} index {p['index']:<3} "
                   f"max|eigenvalue| {p['spectral_radius']:.6g}  max|s| "
                   f"{p['max_abs_state']:.4g}  |F(s)-s| {p['residual']:.2g}")
    norms = row["gradient_norms"]["by_lag"]
    growth = row["gradient_norms"]["growth_per_step"]
    trend = ("" if growth is None else f", x{growth:.4g} per step: "
             + ("vanishing" if growth < 1 else "exploding" if growth > 1 else "neutral"))
    click.echo(f"  gradient norm |ds_T/ds_t| (spectral): {_number(norms[0], 'inf')} one step "
               f"back, {_number(norms[-1], 'inf')} {len(norms)} steps back{trend}")


def _grid_option(entries) -> dict[str, str] | None:
    """``('KEY=VALUES', ...)`` from --grid as a mapping; None when none is given."""
    grid = {}
    for entry in entries:
        key, sep, values = entry.partition("=")
        if not sep or not key.strip():
            raise click.UsageError(f"--grid {entry!r}: write KEY=VALUES, e.g. "
                                   "network.layers[0].units=50,100.")
        if key.strip() in grid:
            raise click.UsageError(f"--grid {key.strip()} is given twice; give one --grid per "
                                   "key with all its values.")
        grid[key.strip()] = values
    return grid or None


@cli.command("sweep")
@CONFIG
@click.option("--grid", "grid", multiple=True, metavar="KEY=VALUES",
              help="A config key path and its values: START:STOP:COUNT (linear), "
                   "START:STOP:COUNT:log (geometric) or a comma list. Repeat for more axes; "
                   "replaces the config's sweep.grid.")
@click.option("--metric", "metrics", multiple=True, metavar="NAME",
              help="A metric to compute per point, repeat for more; replaces sweep.metrics. "
                   "A registered metric: built in (mean_abs_state, final_state_norm, "
                   "spectral_radius, nrmse, memory_capacity, largest_lyapunov) or from a "
                   "plugin; `rnnsim plugins` lists them all.")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False, path_type=Path),
              help="The table, .csv or .parquet; finished points are kept in STEM.points/ next "
                   "to it [default: sweep.output, else CONFIG_STEM-sweep.csv].")
@click.option("--repeats", type=click.IntRange(min=1),
              help="Seeds per grid point [default: sweep.repeats, else 1].")
@click.option("--seed", type=click.IntRange(min=0),
              help="Base seed of the per-point seeds [default: sweep.seed, else network.seed].")
@click.option("--workers", "-j", type=click.IntRange(min=1),
              help="Parallel processes (or local Dask workers) [default: the CPU count].")
@click.option("--scheduler", metavar="ADDRESS",
              help="Run the points on a Dask cluster: tcp://host:8786, or 'local' for a "
                   "throwaway local cluster (needs pip install 'rnnsim[dask]').")
@click.option("--on-error", type=click.Choice(["fail", "record", "skip"]),
              help="A point that fails (its network cannot be built, a metric raises): stop "
                   "the sweep, record NaN and the error in an 'error' column, or leave it out "
                   "of the table; failed points run again on the next call "
                   "[default: sweep.on_error, else record].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary line.")
@click.option("--json", "as_json", is_flag=True, help="Print the table's rows as JSON.")
@reports_errors
def sweep_command(config, grid, metrics, output, repeats, seed, workers, scheduler, on_error,
                  quiet, as_json):
    """Run a config over a grid of values and write one table row of metrics per point."""
    grid = _grid_option(grid)
    from . import sweep as sweep_mod

    parsed = sweep_mod.parse_config(config)
    if output is None and (parsed.sweep is None or parsed.sweep.output is None):
        output = Path(f"{config.stem}-sweep.csv")
    from . import progress

    start = time.perf_counter()
    with progress.shown("sweep", unit="points", quiet=quiet) as bar:
        table = sweep_mod.run_sweep(parsed, grid, list(metrics) or None, output,
                                    repeats=repeats, seed=seed, workers=workers,
                                    scheduler=scheduler, progress=bar, on_error=on_error)
    for point, error in table.failed:
        click.echo(f"warning: sweep point {point} failed: {error}", err=True)
    if as_json:
        click.echo(json.dumps(list(table), indent=2))
    elif not quiet:
        click.echo(f"wrote {table.path}: {len(table)} points ({table.computed} computed, "
                   f"{table.resumed} resumed"
                   f"{f', {len(table.failed)} failed' if table.failed else ''}) in "
                   f"{time.perf_counter() - start:.1f} s; point files in "
                   f"{sweep_mod.points_folder(table.path)}/")


@cli.group("plot")
def plot_group():
    """Draw states, eigenvalues, Lyapunov spectra or sweep heat maps to PNG or SVG (needs
    matplotlib: pip install 'rnnsim[plot]')."""


PLOT_OUTPUT = click.option("--output", "-o", "output_path", required=True,
                           type=click.Path(dir_okay=False, path_type=Path),
                           help="Image to write: .png or .svg.")
PLOT_INPUT = click.option("--input", "input_path", type=click.Path(path_type=Path),
                          help="Input of one sequence (T, k) [default: drawn N(0, 1) noise].")
PLOT_SEED = click.option("--seed", type=click.IntRange(min=0), default=0,
                         help="Seed of the drawn input.")


def _plot_input(net: Network, input_path, timesteps: int, seed: int) -> np.ndarray:
    from .io import read_array
    from .tasks import draw_sequence

    return read_array(input_path) if input_path is not None else draw_sequence(
        net, timesteps, seed)


def _write_plot(fig, path: Path) -> None:
    from . import plot

    plot.save(fig, path)
    click.echo(f"wrote {path}")


@plot_group.command("states")
@CONFIG
@PLOT_INPUT
@click.option("--timesteps", "-T", type=click.IntRange(min=1),
              help="T of the drawn input [default: the config's run.timesteps].")
@click.option("--units", type=click.IntRange(min=1), default=32,
              help="At most this many units drawn per layer.")
@PLOT_SEED
@PLOT_OUTPUT
@reports_errors
def plot_states(config, input_path, timesteps, units, seed, output_path):
    """Draw every layer's hidden states over time."""
    if input_path is not None and timesteps is not None:
        raise click.UsageError("--timesteps sizes the drawn input; with --input the file "
                               "decides.")
    from . import plot
    from .network import open_network

    net = open_network(config)
    x = _plot_input(net, input_path, timesteps or net.config.run.timesteps, seed)
    _write_plot(plot.states(net, x, units), output_path)


@plot_group.command("eigenvalues")
@CONFIG
@PLOT_OUTPUT
@reports_errors
def plot_eigenvalues(config, output_path):
    """Draw the eigenvalues of every layer's recurrent matrix with the unit circle."""
    from . import plot
    from .network import open_network

    _write_plot(plot.eigenvalues(open_network(config)), output_path)


@plot_group.command("lyapunov")
@CONFIG
@PLOT_INPUT
@click.option("--steps", type=click.IntRange(min=1),
              help="Steps after the warm-up: the drawn input's length, or with --input the "
                   "first WARMUP + STEPS steps of the file "
                   f"[default: {ANALYZE_STEPS} drawn steps, or the whole file].")
@click.option("--warmup", type=click.IntRange(min=0), default=100,
              help="Leading steps before the exponents are averaged.")
@click.option("--exponents", type=click.IntRange(min=1), default=50,
              help="How many of the largest exponents per layer (at most the state size).")
@PLOT_SEED
@PLOT_OUTPUT
@reports_errors
def plot_lyapunov(config, input_path, steps, warmup, exponents, seed, output_path):
    """Draw the Lyapunov spectrum of every layer along a driven trajectory."""
    from . import dynamics, plot
    from .network import open_network

    net = open_network(config)
    x = _plot_input(net, input_path, warmup + (steps or ANALYZE_STEPS), seed)
    if input_path is not None and steps is not None:
        x = _first_steps(x, warmup, steps, input_path)
    spectra = dynamics.lyapunov_spectra(net, x, warmup=warmup, exponents=exponents, seed=seed)
    _write_plot(plot.lyapunov(spectra), output_path)


@plot_group.command("memory")
@CONFIG
@click.option("--steps", type=click.IntRange(min=1), default=2000,
              help="Steps of seeded U(-1, 1) input after the washout.")
@PLOT_SEED
@PLOT_OUTPUT
@reports_errors
def plot_memory(config, steps, seed, output_path):
    """Draw the held-out forgetting curve r2(d) of a reservoir (options: the config's
    run.memory_capacity)."""
    from . import plot, reservoir
    from .network import open_network

    net = open_network(config)
    curve = reservoir.memory_curve(net, timesteps=steps, seed=seed,
                                   **reservoir.memory_options(net))
    _write_plot(plot.memory(curve), output_path)


@plot_group.command("sweep")
@click.argument("table", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--x", "x_key", required=True, help="Grid key (column) along the x axis.")
@click.option("--y", "y_key", required=True, help="Grid key (column) along the y axis.")
@click.option("--metric", required=True, help="Metric (column) shown as colour, over the "
                                               "seeds of each grid cell.")
@click.option("--scale", type=click.Choice(["auto", "log", "linear"]), default="auto",
              show_default=True, help="Colour scale; auto is log when every value is "
                                      "positive and they span more than two decades.")
@click.option("--log", "log_scale", is_flag=True, help="Same as --scale log.")
@click.option("--stat", type=click.Choice(["median", "mean"]), default="median",
              show_default=True, help="How the rows of a grid cell (its seeds) combine.")
@PLOT_OUTPUT
@reports_errors
def plot_sweep(table, x_key, y_key, metric, scale, log_scale, stat, output_path):
    """Draw a heat map of one metric of a sweep table (.csv or .parquet) over two grid keys."""
    from . import plot

    _write_plot(plot.sweep(table, x_key, y_key, metric, scale="log" if log_scale else scale,
                           stat=stat), output_path)


@cli.group("cache")
def cache_group():
    """Inspect or clear the compiled-kernel cache (capped at $RNNSIM_CACHE_MAX_MB)."""


@cache_group.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def cache_info(as_json):
    """Show where compiled kernels are cached, how many, and their size against the cap."""
    from . import cache

    info = cache.info()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"{info['folder']}: {info['kernels']} kernels, {info['bytes'] / 2**20:.1f} MB "
               f"of {info['max_bytes'] / 2**20:.0f} MB (least recently used go first; "
               "set RNNSIM_CACHE_MAX_MB to change)")
    if info["kernels"]:
        click.echo(f"last used from {info['oldest_use']} to {info['newest_use']}")


@cache_group.command("clear")
def cache_clear():
    """Remove every cached kernel; the next run compiles afresh."""
    from . import cache

    click.echo(f"removed {cache.clear()} kernels from {cache.cache_dir()}")
