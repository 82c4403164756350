"""Hostile input at every entry point: each case ends in a correct result or in an RnnsimError
whose message names the bad thing; never another exception, a hang or a crash.

Every case is counted by target and outcome; the counts are printed when the module ends (and
written to fuzz-counts.json in pytest's base temp folder). RNNSIM_FUZZ_EXAMPLES sets the
examples per property (default 60) and RNNSIM_FUZZ_RANDOM=1 draws new ones on every run
(the default replays the same examples, so CI is reproducible).
"""
import ast
import contextlib
import copy
import io
import json
import os
import re
import signal
import struct
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import rnnsim
from rnnsim import RnnsimError, State, config as config_mod, io as rio, plugins
from rnnsim.cli import cli

OUTCOMES: dict[str, Counter] = defaultdict(Counter)
FUZZ = settings(max_examples=int(os.environ.get("RNNSIM_FUZZ_EXAMPLES", "60")), deadline=None,
                derandomize=not os.environ.get("RNNSIM_FUZZ_RANDOM"), database=None,
                suppress_health_check=list(HealthCheck))
CASE_SECONDS = 60
CONFIGS = Path(__file__).parents[1] / "configs"


class Hang(BaseException):
    """A case ran past CASE_SECONDS (a BaseException, so no ``except Exception`` hides it)."""


@contextlib.contextmanager
def time_limit(target: str):
    def expire(signum, frame):
        raise Hang(f"{target}: no answer after {CASE_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def attempt(target: str, call, names=()):
    """``call()``'s value, or the RnnsimError it raised, whose message must contain one of
    ``names``; counted under ``target``. Any other exception fails the test."""
    with time_limit(target):
        try:
            value = call()
        except RnnsimError as exc:
            OUTCOMES[target][type(exc).__name__] += 1
            message = str(exc)
            assert message.strip(), f"{target}: empty message"
            assert not names or any(name in message for name in names), (
                f"{target}: the message names none of {names}: {message}")
            return exc
    OUTCOMES[target]["ok"] += 1
    return value


def invoke(target: str, *args):
    """The CLI on ``args``: exit 0 (ok), 1 (a reported RnnsimError) or 2 (misuse), counted."""
    with time_limit(target):
        result = CliRunner().invoke(cli, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code in (0, 1, 2), result.output
    assert "Traceback" not in result.output, result.output
    if result.exit_code:
        assert re.search(r"^Error: ", result.output, re.MULTILINE), result.output
    OUTCOMES[target][{0: "ok", 1: "error (exit 1)", 2: "usage (exit 2)"}[result.exit_code]] += 1
    return result


@pytest.fixture(scope="module", autouse=True)
def counts(request, tmp_path_factory):
    """A modest memory limit (huge sizes fail fast), then the counts when the module ends."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RNNSIM_MEMORY_LIMIT", "256M")
        yield
    total = sum(sum(c.values()) for c in OUTCOMES.values())
    lines = [f"fuzz: {total} cases over {len(OUTCOMES)} targets (outcome: count)"]
    for target in sorted(OUTCOMES):
        outcomes = ", ".join(f"{k} {v}" for k, v in OUTCOMES[target].most_common())
        lines.append(f"  {target:<46} {sum(OUTCOMES[target].values()):>5}  {outcomes}")
    path = tmp_path_factory.getbasetemp() / "fuzz-counts.json"
    path.write_text(json.dumps({k: dict(v) for k, v in OUTCOMES.items()}, indent=1))
    lines.append(f"  (written to {path})")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        for line in lines:
            if reporter is not None:
                reporter.write_line(line)
            else:
                print(line)


# ---- configs -----------------------------------------------------------------------------

SEED_CONFIGS = [p.read_text() for p in sorted(CONFIGS.glob("*.yaml"))] + [
    yaml.safe_dump({"network": {"input_size": 3, "dtype": "float64", "batch_first": True,
                                "layers": [{"cell": "lstm", "units": 4, "proj_size": 2,
                                            "peepholes": True},
                                           {"cell": "gru", "units": 3, "bidirectional": True}],
                                "head": {"name": "last_step", "units": 2}},
                    "run": {"timesteps": 5, "batch": 2}}),
    yaml.safe_dump({"network": {"input_size": 2, "layers": [
        {"cell": "esn", "units": 6, "sparse": True, "leak_rate": 0.5,
         "init": {"recurrent": {"name": "sparse_random", "connectivity": 0.3,
                                "spectral_radius": 0.9}}}],
        "head": {"name": "linear", "activation": {"name": "leaky_relu", "alpha": 0.1}}},
        "run": {"timesteps": 4}}),
]
TOKENS = ["null", "~", "-1", "0", "1e400", ".nan", "-.inf", "0x1F", "1_000", "1000000000",
          "2001-12-14", "yes", "no", "[", "]", "{", "}", "? ", "&a", "*a", "<<: *a", "'\\0'",
          "!!binary aGk=", "!!python/object/apply:os.system ['echo hacked']", "!!float 3",
          "\t", "\n  - ", ": ", "- ", "#", '"', "'", "|", ">", "%YAML 1.1", "---", "...",
          "relu6", "tanh", "softmax", "units", "cell: lstm", "bidirectional: true",
          "units: 1000000000", "input_size: 1000000000", "timesteps: 1000000000000"]


@st.composite
def mutated_yaml(draw) -> bytes:
    text = draw(st.sampled_from(SEED_CONFIGS))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "value", "line", "swap"]))
        if op == "insert":
            text = text[:at] + draw(st.sampled_from(TOKENS) | st.text(max_size=6)) + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)):]
        elif op == "value":
            values = list(re.finditer(r":[ \t]*([^\s#{}\[\],][^\n#,}\]]*)", text))
            if values:
                match = values[draw(st.integers(0, len(values) - 1))]
                text = (text[:match.start(1)] + draw(st.sampled_from(TOKENS)) +
                        text[match.end(1):])
        elif op == "line":
            lines = text.splitlines()
            if lines:
                i = draw(st.integers(0, len(lines) - 1))
                lines.insert(draw(st.integers(0, len(lines))), lines.pop(i) if draw(
                    st.booleans()) else lines[i])
                text = "\n".join(lines)
        elif at + 1 < len(text):
            text = text[:at] + text[at + 1] + text[at] + text[at + 2:]
    data = text.encode()
    if draw(st.integers(0, 9)) == 0:  # not UTF-8
        at = draw(st.integers(0, len(data)))
        data = data[:at] + b"\xff\xfe\x00" + data[at:]
    return data


CONFIG_NAMES = ("network", "run", "sweep", "config", "RNNSIM_MEMORY_LIMIT")


def run_built(target: str, net):
    """A small run of a network that was built: a result, or a named error."""
    batch_first = net.config.network.batch_first
    x = np.random.default_rng(0).standard_normal((2, 3, net.input_size) if batch_first
                                                  else (3, 2, net.input_size))
    result = attempt(target, lambda: net.run(x), ("layer", "head", "network", "x"))
    if isinstance(result, rnnsim.RunResult):
        assert result.output.shape[:2] == x.shape[:2]


@FUZZ
@given(data=mutated_yaml())
def test_mutated_yaml_configs(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("yaml") / "config.yaml"
    path.write_bytes(data)
    attempt("config: parse mutated YAML", lambda: config_mod.parse(path), CONFIG_NAMES)
    net = attempt("config: build mutated YAML", lambda: rnnsim.Network.from_config(path),
                  CONFIG_NAMES)
    if isinstance(net, rnnsim.Network):
        run_built("config: run mutated YAML", net)
    invoke("cli: validate mutated YAML", "validate", path)
    result = invoke("cli: run mutated YAML", "run", path)
    if result.exit_code == 1:
        assert any(name in result.output for name in CONFIG_NAMES + ("x", "input")), \
            result.output


NASTY_VALUES = st.sampled_from([
    None, True, False, 0, -1, 1, 2, 10**9, 10**30, -10**30, 1.5, float("nan"), float("inf"),
    "", "tanh", "relu6", "lstm", "float16", "x" * 300, [], [1, 2], [[]], {}, {"name": 3},
    {"name": "tanh", "alpha": "a"}, {"name": "leaky_relu", "alpha": 1e308}])


def key_paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from key_paths(item, prefix + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from key_paths(item, prefix + (i,))


@st.composite
def mutated_mapping(draw) -> dict:
    data = yaml.safe_load(draw(st.sampled_from(SEED_CONFIGS)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in key_paths(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = copy.deepcopy(draw(NASTY_VALUES))
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["unknwon", "units", "cell", "head", "noise",
                                         "proj_size", "clip", "sparse"]))] = copy.deepcopy(
                draw(NASTY_VALUES))
    return data


@FUZZ
@given(data=mutated_mapping())
def test_mutated_config_mappings(data):
    net = attempt("config: build mutated mapping", lambda: rnnsim.Network.from_config(data),
                  CONFIG_NAMES)
    if isinstance(net, rnnsim.Network):
        run_built("config: run mutated mapping", net)


# ---- arrays into run, step, initial_state ------------------------------------------------

NETWORKS = {
    "elman+linear": {"input_size": 3, "layers": [{"cell": "elman", "units": 4}],
                     "head": {"name": "linear", "units": 2}},
    "lstm-proj x2": {"input_size": 3, "dtype": "float64", "layers": [
        {"cell": "lstm", "units": 4, "proj_size": 2}, {"cell": "lstm", "units": 3}]},
    "gru batch_first+last_step": {"input_size": 3, "batch_first": True, "layers": [
        {"cell": "gru", "units": 3}], "head": {"name": "last_step", "units": 2}},
    "gru bidirectional": {"input_size": 3, "layers": [
        {"cell": "gru", "units": 3, "bidirectional": True}]},
}


@pytest.fixture(scope="module")
def networks():
    return {name: rnnsim.Network.from_config({"network": cfg}) for name, cfg in NETWORKS.items()}


DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int64, np.uint8, np.bool_,
          np.complex64, np.dtype("U3"), np.dtype("M8[s]")]


def arrays_near(shape) -> st.SearchStrategy:
    """Arrays of ``shape`` or of a shape one mistake away, of any dtype, NaN/inf included,
    C- or Fortran-ordered or strided; and things that are not arrays at all."""
    def changed(shape):
        return st.one_of(
            st.just(shape),
            st.integers(0, max(0, len(shape) - 1)).flatmap(
                lambda i: st.integers(0, 6).map(lambda n: shape[:i] + (n,) + shape[i + 1:])
                if shape else st.just((n,))),
            st.just(shape[1:]), st.just(shape + (1,)), st.just(tuple(reversed(shape))),
            hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))

    def build(args):
        shape, dtype, layout, fill = args
        kind = np.dtype(dtype).kind
        if kind in "fc":
            a = np.random.default_rng(len(shape)).standard_normal(shape).astype(dtype)
            if fill and a.size:
                a.flat[fill % a.size] = [np.nan, np.inf, -np.inf][fill % 3]
        elif kind == "U":
            a = np.full(shape, "ab", dtype)
        elif kind == "M":
            a = np.zeros(shape, dtype)
        else:
            a = np.ones(shape, dtype)
        if layout == "F":
            a = np.asfortranarray(a)
        elif layout == "reversed" and a.ndim:
            a = a[::-1]
        elif layout == "strided" and a.ndim:
            a = np.repeat(a, 2, axis=0)[::2]
        return a

    others = st.sampled_from([None, "abc", 3, 2.5, [], [[1.0, 2.0], [3.0]], {"x": 1},
                              object(), [1, "a"], np.array(3.0), np.array([None, 1.0])])
    built = st.tuples(changed(tuple(shape)), st.sampled_from(DTYPES),
                      st.sampled_from(["C", "F", "reversed", "strided"]),
                      st.integers(0, 3)).map(build)
    return st.one_of(built, built, built, others)


ARRAY_NAMES = ("x", "h0", "c0", "lengths", "state", "batch", "nonfinite", "bidirectional")


@FUZZ
@given(data=st.data(), name=st.sampled_from(sorted(NETWORKS)),
       target=st.sampled_from(["x", "h0", "c0", "lengths", "state", "step", "batch",
                               "options"]))
def test_hostile_arrays_into_run_and_step(networks, data, name, target):
    net = networks[name]
    batch_first = net.config.network.batch_first
    T, B, k = 4, 2, net.input_size
    x = np.random.default_rng(1).standard_normal((B, T, k) if batch_first else (T, B, k))
    state = net.initial_state(B)
    kw = {}
    if target == "x":
        x = data.draw(arrays_near(x.shape))
        call = lambda: net.run(x)  # noqa: E731
    elif target in ("h0", "c0"):
        D = net.layers[0].directions
        width = getattr(net.layers[0], "hidden_size" if target == "h0" else "cell_size") or 3
        kw[target] = data.draw(arrays_near((len(net.layers) * D, B, width)) |
                               st.lists(arrays_near((D, B, width)), max_size=3))
        call = lambda: net.run(x, **kw)  # noqa: E731
    elif target == "lengths":
        kw["lengths"] = data.draw(arrays_near((B,)) | st.lists(st.integers(-5, 9), max_size=3))
        call = lambda: net.run(x, **kw)  # noqa: E731
    elif target == "state":
        h = data.draw(st.sampled_from([None, (), state.h, state.h * 2]) |
                      st.lists(arrays_near(state.h[0].shape), max_size=3).map(tuple))
        c = data.draw(st.sampled_from([None, state.c, (None,) * 3]) |
                      st.lists(arrays_near((1, B, 4)) | st.none(), max_size=3).map(tuple))
        make = data.draw(st.sampled_from([
            lambda: State(tuple({"h": a, "c": b} for a, b in zip(h or (), c or ()))),
            lambda: State(tuple({"h": a} for a in h or ())), lambda: "state", lambda: None,
            lambda: (h, c)]))
        x_t = x[:, 0] if batch_first else x[0]
        call = data.draw(st.sampled_from([lambda: net.run(x, make()),
                                          lambda: net.step(x_t, make())]))
    elif target == "step":
        call = lambda: net.step(data.draw(arrays_near((B, k))), state)  # noqa: E731
    elif target == "batch":
        batch = data.draw(st.sampled_from([0, -1, 2.0, "2", None, True, 10**15,
                                           np.int64(3), [2]]))
        call = lambda: net.initial_state(batch)  # noqa: E731
    else:
        kw = data.draw(st.fixed_dictionaries({}, optional={
            "nonfinite": st.sampled_from(["raise", "warn", "ignore", "crash", None, 1]),
            "check_finite": st.booleans()}))
        call = lambda: net.run(x, **kw)  # noqa: E731
    result = attempt(f"arrays: {target}", call, ARRAY_NAMES)
    if isinstance(result, rnnsim.RunResult):  # (T, B) or (B, T), or (T,) for one sequence
        assert result.output.shape[:-1] == np.shape(x)[:-1]


# ---- files -------------------------------------------------------------------------------

def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def header_with(shape="(4, 2, 3)", descr="'<f4'", order="False") -> bytes:
    header = f"{{'descr': {descr}, 'fortran_order': {order}, 'shape': {shape}, }}"
    header = header + " " * (63 - (len(header) + 10) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()


VALID_X = np.random.default_rng(2).standard_normal((4, 2, 8)).astype(np.float32)
HEADERS = [header_with(shape) for shape in ("(10**15,)", "(1000000000000, 8)", "(-1, 8)",
                                            "(4, 2, 'a')", "4", "(4, 2, 8)")] + [
    header_with(descr=d) for d in ("'|O'", "[('a', '<f4')]", "'<U5'", "'>f8'", "'bogus'",
                                   "'<c8'")] + [header_with(order="1")]


@st.composite
def damaged(draw, data: bytes) -> bytes:
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["truncate", "flip", "insert", "overwrite", "header"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "truncate":
            data = data[:at]
        elif op == "flip" and data:
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
        elif op == "insert":
            data = data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at:]
        elif op == "overwrite":
            data = data[:at] + draw(st.binary(max_size=64)) + data[at + 64:]
        elif data.startswith(b"\x93NUMPY"):
            data = draw(st.sampled_from(HEADERS)) + data[128:]
    return data


FILE_NAMES = ("input file", "'", "x", "weights", "model", "state dict")


def x_files():
    objects = np.array([{"a": 1}, None], dtype=object)
    return {
        ".npy": npy_bytes(VALID_X),
        ".npz": npz_bytes(x=VALID_X, lengths=np.array([4, 2])),
        ".npz pickle": npz_bytes(x=objects),
        ".npy pickle": npy_bytes(objects),
        ".csv": b"a,b,c,d,e,f,g,h\n" + b"\n".join(b",".join(b"%g" % v for v in row)
                                                  for row in VALID_X[:, 0]) + b"\n",
    }


@FUZZ
@given(data=st.data(), kind=st.sampled_from(sorted(x_files())))
def test_damaged_input_files(tmp_path_factory, data, kind):
    content = data.draw(damaged(x_files()[kind]) | st.just(x_files()[kind]))
    path = tmp_path_factory.mktemp("files") / f"x{kind.split()[0]}"
    path.write_bytes(content)
    for mmap in (False, True):
        found = attempt(f"files: read_array {kind}", lambda: rio.read_array(path, mmap=mmap),
                        (str(path),))
        if "pickle" in kind and not isinstance(found, RnnsimError):
            assert found.dtype != object
    if kind.startswith(".npz"):
        attempt(f"files: read_npz {kind}", lambda: rio.read_npz(path), (str(path),))
    result = invoke(f"cli: run --input {kind}", "run", CONFIGS / "quickstart.yaml", "--input",
                    path)
    if result.exit_code == 1:
        assert str(path) in result.output or "input x" in result.output or "x " in \
            result.output, result.output


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "model"
    rnnsim.Network.from_config(CONFIGS / "quickstart.yaml").save(folder)
    return folder


@FUZZ
@given(data=st.data(), part=st.sampled_from(["weights.npz", "config.yaml"]))
def test_damaged_model_folders(tmp_path_factory, model_folder, data, part):
    folder = tmp_path_factory.mktemp("damaged") / "model"
    folder.mkdir()
    for name in ("weights.npz", "config.yaml"):
        content = (model_folder / name).read_bytes()
        if name == part:
            content = data.draw(damaged(content) if part.endswith(".npz") else
                                mutated_yaml().map(lambda b: b) | damaged(content))
        (folder / name).write_bytes(content)
    net = attempt(f"files: load model ({part} damaged)", lambda: rnnsim.load(folder),
                  (str(folder), "network", "weights", "parameter"))
    if isinstance(net, rnnsim.Network):
        run_built(f"files: run loaded model ({part} damaged)", net)


def test_weights_of_the_wrong_shapes_names_and_dtypes(tmp_path, model_folder):
    good = dict(np.load(model_folder / "weights.npz"))
    variants = {
        "missing U": {k: v for k, v in good.items() if k != "layers.0.U"},
        "extra": {**good, "layers.0.Q": np.zeros(3)},
        "transposed W": {**good, "layers.0.W": good["layers.0.W"].T},
        "complex": {**good, "layers.0.b": good["layers.0.b"].astype(np.complex64)},
        "strings": {**good, "layers.0.b": np.array(["a"] * 10)},
        "scalar": {**good, "head.b": np.float32(1.0)},
        "NaN": {**good, "layers.0.U": np.full_like(good["layers.0.U"], np.nan)},
    }
    for name, weights in variants.items():
        folder = tmp_path / name.replace(" ", "-")
        folder.mkdir()
        (folder / "config.yaml").write_bytes((model_folder / "config.yaml").read_bytes())
        np.savez(folder / "weights.npz", **weights)
        net = attempt("files: load model (wrong weights)", lambda: rnnsim.load(folder),
                      ("parameter", "weights"))
        if name == "NaN":  # loads; the run says where the states became NaN
            error = attempt("files: run model with NaN weights", lambda: net.run(VALID_X))
            assert isinstance(error, rnnsim.NonfiniteError) and "layer 0" in str(error)
        else:
            assert isinstance(net, RnnsimError), name


def torch_state_dict_files() -> dict[str, bytes]:
    rng = np.random.default_rng(3)
    state = {"weight_ih_l0": rng.standard_normal((8, 3)).astype(np.float32),
             "weight_hh_l0": rng.standard_normal((8, 2)).astype(np.float32),
             "bias_ih_l0": rng.standard_normal(8).astype(np.float32),
             "bias_hh_l0": rng.standard_normal(8).astype(np.float32)}
    from safetensors.numpy import save

    files = {".npz": npz_bytes(**state), ".safetensors": save(state)}
    try:
        import torch
    except ImportError:
        return files
    buffer = io.BytesIO()
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, buffer)
    files[".pt"] = buffer.getvalue()
    return files


@pytest.fixture(scope="module")
def state_dict_files():
    return torch_state_dict_files()


@FUZZ
@given(data=st.data())
def test_damaged_pytorch_state_dicts(tmp_path_factory, state_dict_files, data):
    from rnnsim.interop.torch import load_state_dict

    kind = data.draw(st.sampled_from(sorted(state_dict_files)))
    path = tmp_path_factory.mktemp("torch") / f"weights{kind}"
    path.write_bytes(data.draw(damaged(state_dict_files[kind])))
    state = attempt(f"files: load_state_dict {kind}", lambda: load_state_dict(path),
                    (str(path),))
    if isinstance(state, dict):
        attempt(f"files: from_torch damaged {kind}", lambda: rnnsim.from_torch(
            state, mode="lstm", input_size=3, hidden_size=2), ("weight", "bias", "state dict",
                                                                "from_torch"))
    invoke(f"cli: import torch {kind}", "import", "torch", path, "--mode", "lstm",
           "--input-size", 3, "--hidden-size", 2, "-o", path.with_suffix(".model"))


def test_a_pickle_bearing_file_is_refused_and_never_unpickled(tmp_path):
    class Boom:
        def __reduce__(self):
            return (os.system, ("echo unpickled > " + str(tmp_path / "ran"),))

    np.savez(tmp_path / "x.npz", x=np.array([Boom()], dtype=object))
    np.save(tmp_path / "x.npy", np.array([Boom()], dtype=object), allow_pickle=True)
    folder = tmp_path / "model"
    rnnsim.Network.from_config(CONFIGS / "quickstart.yaml").save(folder)
    np.savez(folder / "weights.npz", **{"layers.0.W": np.array([Boom()], dtype=object)})
    for call in (lambda: rio.read_array(tmp_path / "x.npz"),
                 lambda: rio.read_array(tmp_path / "x.npy"),
                 lambda: rio.read_array(tmp_path / "x.npy", mmap=True),
                 lambda: rnnsim.load(folder)):
        error = attempt("files: pickle-bearing arrays", call)
        assert isinstance(error, rnnsim.InputError)
        assert "pickle" in str(error) and "refuses" in str(error), error
    assert not (tmp_path / "ran").exists()


# ---- ONNX --------------------------------------------------------------------------------

def onnx_lstm(mutation: str = "", hidden: int = 3, k: int = 2):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(4)
    weights = {"W": rng.standard_normal((1, 4 * hidden, k)).astype(np.float32),
               "R": rng.standard_normal((1, 4 * hidden, hidden)).astype(np.float32),
               "B": rng.standard_normal((1, 8 * hidden)).astype(np.float32)}
    attributes = {"hidden_size": hidden}
    inputs = ["X", "W", "R", "B"]
    if mutation == "wrong W shape":
        weights["W"] = weights["W"][:, :-1]
    elif mutation == "wrong R shape":
        weights["R"] = weights["R"][..., :-1]
    elif mutation == "B as float64":
        weights["B"] = weights["B"].astype(np.float64)
    elif mutation == "W as int32":
        weights["W"] = weights["W"].astype(np.int32)
    elif mutation == "hidden_size mismatch":
        attributes["hidden_size"] = hidden + 1
    elif mutation == "bad direction":
        attributes["direction"] = "sideways"
    elif mutation == "unknown activation":
        attributes["activations"] = ["Sigmoid", "Swish", "Tanh"]
    elif mutation == "negative clip":
        attributes["clip"] = -1.0
    elif mutation == "layout 2":
        attributes["layout"] = 2
    elif mutation == "hidden_size 10**9":
        attributes["hidden_size"] = 10**9
    initializers = [numpy_helper.from_array(v, name) for name, v in weights.items()]
    if mutation == "missing initializer":
        initializers = [t for t in initializers if t.name != "R"]
    node = helper.make_node("Swishy" if mutation == "unknown op" else "LSTM", inputs,
                            ["Y", "Y_h"], **attributes)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", k])],
        [helper.make_tensor_value_info("Y_h" if mutation != "dangling output" else "Z",
                                       TensorProto.FLOAT, None)], initializers)
    opset = 1 if mutation == "opset 1" else 14
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


ONNX_MUTATIONS = ["", "wrong W shape", "wrong R shape", "B as float64", "W as int32",
                  "hidden_size mismatch", "bad direction", "unknown activation",
                  "negative clip", "layout 2", "hidden_size 10**9", "missing initializer",
                  "unknown op", "dangling output", "opset 1"]


@pytest.mark.parametrize("mutation", ONNX_MUTATIONS)
def test_onnx_graphs_with_wrong_shapes_types_or_missing_initializers(tmp_path, mutation):
    model = onnx_lstm(mutation)
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    loaded = attempt("onnx: structural mutation", lambda: rnnsim.from_onnx(path),
                     ("LSTM", "node", "initializer", "opset", "Swishy", "output", "'"))
    if mutation == "":
        assert not isinstance(loaded, RnnsimError), loaded
    if isinstance(loaded, RnnsimError):
        return
    x = np.random.default_rng(5).standard_normal((4, 2, 2)).astype(np.float32)
    for feeds in ({"X": x}, {"X": x.astype(np.float64)}, {"X": x[..., :1]}, {"Y": x}, {},
                  {"X": np.where(x > 1, np.nan, x)}, {"X": x[:0]}, "X"):
        attempt("onnx: run with hostile feeds", lambda: loaded.run(feeds), ("input", "X", "'"))


@FUZZ
@given(data=st.data())
def test_damaged_onnx_files(tmp_path_factory, data):
    content = onnx_lstm().SerializeToString()
    path = tmp_path_factory.mktemp("onnx") / "m.onnx"
    path.write_bytes(data.draw(damaged(content)))
    loaded = attempt("onnx: damaged file", lambda: rnnsim.from_onnx(path),
                     (str(path), "ONNX model", "node", "initializer", "'"))
    if not isinstance(loaded, RnnsimError):
        x = np.zeros((3, 1, 2), np.float32)
        attempt("onnx: run damaged file", lambda: loaded.run({name: x for name in
                                                               loaded.input_names}),
                ("input", "node", "'"))


# ---- sizes beyond the memory -------------------------------------------------------------

HUGE = {
    "units 10**9": ({"input_size": 8, "layers": [{"units": 10**9}]}, "units = 1000000000"),
    "input_size 10**9": ({"input_size": 10**9, "layers": [{"units": 10}]}, "input size"),
    "lstm units 10**8": ({"input_size": 8, "layers": [{"cell": "lstm", "units": 10**8}]},
                         "layers.0.U"),
    "second layer 10**7": ({"input_size": 2, "layers": [{"units": 4}, {"units": 10**7}]},
                           "layers[1]"),
    "head units 10**9": ({"input_size": 2, "layers": [{"units": 4}],
                          "head": {"name": "linear", "units": 10**9}}, "head"),
    "sparse reservoir 10**6 at 1%": ({"input_size": 1, "layers": [{
        "cell": "esn", "units": 10**6, "sparse": True, "init": {"recurrent": {
            "name": "sparse_random", "connectivity": 0.01}}}]}, "layers.0.W (1000000, 1000000) "
                                     "in CSR form"),
    "esn input weights": ({"input_size": 10**6, "layers": [{"cell": "esn", "units": 10**5,
                                                             "sparse": True}]}, "layers.0.Win"),
}


@pytest.mark.parametrize("case", sorted(HUGE))
def test_huge_declared_sizes_fail_before_allocating(case, monkeypatch):
    import tracemalloc

    monkeypatch.delenv("RNNSIM_MEMORY_LIMIT")  # the machine's real memory
    network, named = HUGE[case]
    tracemalloc.start()
    try:
        error = attempt("sizes: huge config", lambda: rnnsim.Network.from_config(
            {"network": network}), (named,))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(error, rnnsim.ConfigError), error
    assert "of memory" in str(error) and "nothing was allocated" in str(error)
    assert peak < 16 * 2**20, f"{case}: {peak} bytes allocated before failing"


def test_huge_runs_fail_before_allocating(tmp_path, monkeypatch):
    monkeypatch.delenv("RNNSIM_MEMORY_LIMIT")
    net = rnnsim.Network.from_config({"network": {"input_size": 1, "layers": [
        {"cell": "lstm", "units": 64}]}})
    lazy = np.lib.format.open_memmap(tmp_path / "x.npy", "w+", np.float32, (10**9, 4, 1))
    error = attempt("sizes: huge runs", lambda: net.run(lazy))
    assert isinstance(error, rnnsim.ShapeError) and "T = 1000000000" in str(error)
    assert "out=" in str(error)
    error = attempt("sizes: huge runs", lambda: net.initial_state(10**13))
    assert isinstance(error, rnnsim.ShapeError) and "layer 0 h" in str(error)
    error = attempt("sizes: huge runs", lambda: net.run(lazy, out=tmp_path / "o.npy"))
    assert isinstance(error, rnnsim.ShapeError) and "on disk" in str(error)
    assert not (tmp_path / "o.npy").exists()
    header = tmp_path / "claims.npy"
    header.write_bytes(header_with("(1000000000000, 4, 1)") + b"\0" * 64)
    error = attempt("sizes: huge runs", lambda: rio.read_array(header))
    assert isinstance(error, rnnsim.InputError) and "truncated" in str(error)
    for args in (["-T", 10**12], ["-T", 10**12, "--output", tmp_path / "big.npy"],
                 ["-B", 10**12]):
        result = invoke("cli: huge -T/-B", "run", CONFIGS / "quickstart.yaml", *args)
        assert result.exit_code == 1 and ("of memory" in result.output or "on disk" in
                                          result.output), result.output


# ---- plugins that raise or return bad objects --------------------------------------------

def bad_activation(kind):
    if kind == "reads a missing attribute":
        return lambda x: x.not_an_attribute
    if kind == "calls Python":
        return lambda x: float(str(x))
    if kind == "returns a tuple":
        return lambda x: (x, x)
    if kind == "raises at run time":
        def raises(x):
            if x > 0.5:
                raise ValueError("too large")
            return x
        return raises
    if kind == "returns NaN":
        return lambda x: x * np.nan
    raise AssertionError(kind)


def bad_initializer(kind):
    return {
        "raises": lambda shape, rng, dtype: 1 / 0,
        "wrong shape": lambda shape, rng, dtype: np.zeros(shape[:-1], dtype),
        "a list": lambda shape, rng, dtype: [[0.0] * shape[-1]] * shape[0],
        "NaN": lambda shape, rng, dtype: np.full(shape, np.nan, dtype),
        "strings": lambda shape, rng, dtype: np.full(shape, "w"),
        "objects": lambda shape, rng, dtype: np.empty(shape, object),
        "None": lambda shape, rng, dtype: None,
        "unknown keyword": lambda shape, rng, dtype, gain=1.0: np.zeros(shape, dtype),
    }[kind]


class BadHead(rnnsim.Head):
    kind = ""

    def __init__(self, in_features, units, activation):
        if self.kind == "init raises":
            raise RuntimeError("no")
        super().__init__(in_features, units, activation)

    def forward(self, params, states):
        if self.kind == "forward raises":
            raise KeyError("W_missing")
        if self.kind == "wrong shape":
            return states[0]
        if self.kind == "a string":
            return "y"
        if self.kind == "NaN":
            return np.full(states.shape[:2] + (self.units,), np.nan)
        return self.linear(params, states)


ACTIVATION_FAULTS = ["reads a missing attribute", "calls Python", "returns a tuple",
                     "raises at run time", "returns NaN"]
INITIALIZER_FAULTS = ["raises", "wrong shape", "a list", "NaN", "strings", "objects", "None",
                      "unknown keyword"]
HEAD_FAULTS = ["init raises", "forward raises", "wrong shape", "a string", "NaN"]


@pytest.mark.parametrize("fault", [("activation", k) for k in ACTIVATION_FAULTS] +
                         [("initializer", k) for k in INITIALIZER_FAULTS] +
                         [("head", k) for k in HEAD_FAULTS])
def test_plugins_that_raise_or_return_bad_objects(fault):
    kind, how = fault
    name = "bad_" + re.sub(r"\W", "_", how)

    class Plugin:
        @rnnsim.hookimpl
        def register_activations(self, register):
            if kind == "activation":
                register(name, bad_activation(how))

        @rnnsim.hookimpl
        def register_initializers(self, register):
            if kind == "initializer":
                register(name, bad_initializer(how))

        @rnnsim.hookimpl
        def register_heads(self, register):
            if kind == "head":
                register(name, type(name, (BadHead,), {"kind": how}))

    layer = {"units": 3}
    network = {"input_size": 2, "layers": [layer]}
    if kind == "activation":
        layer["activation"] = name
    elif kind == "initializer":
        layer["init"] = {"recurrent": {"name": name, "bogus": 2.0} if how == "unknown keyword"
                         else name}
    else:
        network["head"] = {"name": name, "units": 2}
    plugins.register_plugin(Plugin(), name=f"fuzz-{name}", package="fuzz-package")
    try:
        def build_and_run():
            net = rnnsim.Network.from_config({"network": network})
            return net.run(np.full((4, 1, 2), 0.9, np.float32))

        error = attempt(f"plugins: {kind}", build_and_run)
    finally:
        plugins.unregister_plugin(f"fuzz-{name}")
    assert isinstance(error, RnnsimError), f"{fault} gave a result"
    message = str(error)
    assert name in message, message


# ---- the command line --------------------------------------------------------------------

CLI_OPTIONS = {
    "--input": ["x.npy", "x.npz", "x3.npy", "nan.npy", "missing.npy", ".", "x.csv"],
    "--output": ["out.npy", "out.npz", "out.txt", "nowhere/out.npy", ".", "out.y.npy"],
    "--timesteps": ["1", "7", "0", "-1", "1e3", "1000000000000"],
    "--batch": ["1", "3", "0", "100000000000"],
    "--seed": ["0", "5", "-1", "x"],
    "--lengths": ["1,2", "4,4", "9,9,9,9", "a,b", "-1,2,3,4", ""],
    "--chunk-steps": ["1", "3", "0", "-5"],
    "--nonfinite": ["raise", "warn", "ignore", "bogus"],
    "--device": ["cpu", "tpu"],
    "--save": ["model", ".", "x.npy"],
}
CLI_FLAGS = ["--resume", "--allow-nonfinite", "--json"]


@FUZZ
@given(options=st.dictionaries(st.sampled_from(sorted(CLI_OPTIONS)), st.integers(0, 9),
                               max_size=4),
       flags=st.lists(st.sampled_from(CLI_FLAGS), max_size=2, unique=True))
def test_hostile_command_lines(tmp_path_factory, options, flags):
    folder = tmp_path_factory.mktemp("cli")
    np.save(folder / "x.npy", VALID_X)
    np.save(folder / "x3.npy", VALID_X[..., :3])
    np.save(folder / "nan.npy", np.where(VALID_X > 1, np.nan, VALID_X))
    np.savez(folder / "x.npz", x=VALID_X, lengths=np.array([4, 3]))
    (folder / "x.csv").write_text("1,2,3,4,5,6,7,8\n" * 3)
    args = [part for option, pick in options.items()
            for part in (option, CLI_OPTIONS[option][pick % len(CLI_OPTIONS[option])])]
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        invoke("cli: hostile options", "run", CONFIGS / "quickstart.yaml", *args, *flags)
    finally:
        os.chdir(cwd)


# ---- untrusted files never execute code --------------------------------------------------

PACKAGE_SOURCES = sorted(
    [p for p in (Path(__file__).parents[1] / "rnnsim").rglob("*.py")] +
    [p for p in (Path(__file__).parents[1] / "plugins").glob("*/*/**/*.py")
     if "tests" not in p.parts and ".egg-info" not in str(p)])
UNPICKLERS = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "shelve", "marshal",
              "joblib"}


def dotted(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return ""


def keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def test_package_source_never_unpickles_or_evaluates_untrusted_data():
    """yaml.safe_load-style loading only, no pickle, np.load(allow_pickle=False),
    torch.load(weights_only=True); exec only where codegen runs the kernel source it wrote."""
    problems, execs = [], []
    for path in PACKAGE_SOURCES:
        tree = ast.parse(path.read_text(), str(path))
        where = path.relative_to(Path(__file__).parents[1])
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""]
                problems += [f"{where}:{node.lineno} imports {n}" for n in names
                             if n.split(".")[0] in UNPICKLERS]
            if isinstance(node, ast.Attribute) and dotted(node) in (
                    "yaml.Loader", "yaml.UnsafeLoader", "yaml.FullLoader", "yaml.unsafe_load",
                    "yaml.full_load", "yaml.load_all", "torch.jit.load"):
                problems.append(f"{where}:{node.lineno} uses {dotted(node)}")
            if not isinstance(node, ast.Call):
                continue
            name = dotted(node.func)
            pickle = keyword(node, "allow_pickle")
            if pickle is not None and not (isinstance(pickle, ast.Constant) and
                                           pickle.value is False):
                problems.append(f"{where}:{node.lineno} passes allow_pickle={ast.unparse(pickle)}")
            if name in ("np.load", "numpy.load") and pickle is None:
                problems.append(f"{where}:{node.lineno} calls {name} without allow_pickle=False")
            if name == "yaml.load" and not dotted(keyword(node, "Loader") or ast.Name(
                    "")).endswith("SafeLoader"):
                problems.append(f"{where}:{node.lineno} calls yaml.load without a SafeLoader")
            if name == "torch.load":
                weights_only = keyword(node, "weights_only")
                if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                    problems.append(f"{where}:{node.lineno} calls torch.load without "
                                    "weights_only=True")
            if name in ("eval", "exec"):
                execs.append(f"{where}:{node.lineno}")
    assert not problems, problems
    assert len(execs) == 1 and execs[0].startswith("rnnsim/kernels/codegen.py"), execs
    loader_source = (Path(__file__).parents[1] / "rnnsim" / "yamlfile.py").read_text()
    assert "class SafeLoader(yaml.SafeLoader)" in loader_source


def test_yaml_tags_that_would_run_code_are_refused(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.yaml"
    path.write_text(f"network: !!python/object/apply:os.system ['touch {marker}']\n")
    error = attempt("files: YAML with python tags", lambda: config_mod.parse(path),
                    (str(path),))
    assert isinstance(error, rnnsim.ConfigError) and "python/object" in str(error)
    assert not marker.exists()


BAD_COMMANDS = [
    ["validate", "missing.yaml"], ["info", "."], ["info", "x.npy"], ["explain", "bad.yaml"],
    ["run", "{cfg}", "--input", "."], ["run", "{cfg}", "--input", "missing.npy"],
    ["run", "{cfg}", "--input", "x.npy", "--lengths", "4,4,9"],
    ["run", "{cfg}", "--output", "nowhere/out.npz"], ["run", "{cfg}", "--output", "."],
    ["run", "{cfg}", "--output", "out.txt"], ["run", "{cfg}", "--output", "nowhere/out.npy"],
    ["run", "{cfg}", "-T", "5", "--output", "out.npy", "--chunk-steps", "0"],
    ["run", "{cfg}", "--input", "x.npy", "--timesteps", "3"], ["run", "x.npy"],
    ["run", "{cfg}", "--seed", "-3"], ["run", "{cfg}", "--nonfinite", "sometimes"],
    ["run", "{cfg}", "--input", "nan.npy"], ["run", "{cfg}", "--input", "x3.npy"],
    ["fit", "{cfg}", "--task", "mackey-glass"], ["fit", "{cfg}", "--input", "x.npy"],
    ["fit", "{cfg}", "--input", "x.npy", "--target", "x3.npy"],
    ["analyze", "{cfg}", "--input", "missing.npy"], ["analyze", "{cfg}", "--seed", "-1"],
    ["analyze", "{cfg}", "--input", "nan.npy"],
    ["sweep", "{cfg}", "--grid", "bogus"], ["sweep", "{cfg}", "--metric", "nope"],
    ["sweep", "{cfg}", "--grid", "network.layers[9].units=1,2", "--metric", "mean_abs_state"],
    ["sweep", "{cfg}", "--grid", "network.layers[0].units=0,-1", "--metric", "mean_abs_state",
     "-o", "s.csv"],
    ["import", "torch", "x.npy", "--mode", "gru", "--input-size", "8", "--hidden-size", "2",
     "-o", "m"],
    ["new-plugin", "bad name!"],
]


@pytest.mark.parametrize("command", BAD_COMMANDS, ids=" ".join)
def test_every_command_reports_bad_arguments(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    np.save("x.npy", VALID_X)
    np.save("x3.npy", VALID_X[..., :3])
    np.save("nan.npy", np.where(VALID_X > 1, np.nan, VALID_X))
    Path("bad.yaml").write_text("network: [")
    args = [a.replace("{cfg}", str(CONFIGS / "quickstart.yaml")) for a in command]
    result = invoke("cli: commands with bad arguments", *args)
    assert result.exit_code in (1, 2), result.output
