"""Figures: states, eigenvalues, Lyapunov spectra, sweep heat maps; files, CLI, no matplotlib."""
import sys

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import rnnsim
from rnnsim import dynamics, plot
from rnnsim.cli import cli
from rnnsim.tasks import draw_sequence
from rnnsim.errors import InputError
from rnnsim.sweep import write_table

PNG = b"\x89PNG\r\n\x1a\n"


def network(cell="elman", layers=1, **options):
    return rnnsim.Network.from_config({"network": {
        "input_size": 2, "dtype": "float64", "seed": 2,
        "layers": [{"cell": cell, "units": 6, **options}] * layers}})


def write_config(tmp_path, cell="elman", **options):
    path = tmp_path / "net.yaml"
    path.write_text(yaml.safe_dump({"network": {
        "input_size": 2, "layers": [{"cell": cell, "units": 6, **options}]},
        "run": {"timesteps": 30}}))
    return path


def assert_image(path, kind):
    data = path.read_bytes()
    if kind == "png":
        assert data.startswith(PNG) and len(data) > 5000
    else:
        assert b"<svg" in data[:2000] and data.rstrip().endswith(b"</svg>")
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def invoke(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result.output


def test_states_axes_hold_each_layers_outputs():
    net = network("gru", layers=2)
    x = np.random.default_rng(0).standard_normal((15, 2))
    fig = plot.states(net, x, units=4)
    top = net.run(x).output
    lower, upper = fig.axes
    assert len(lower.lines) == 4 and len(upper.lines) == 4
    for i, line in enumerate(upper.lines):
        np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 16))
        np.testing.assert_allclose(line.get_ydata(), top[:, i])
    assert "first 4 of 6" in upper.get_title()


def test_eigenvalue_axes_hold_the_eigenvalues_of_each_gate_block():
    net = network("lstm", proj_size=3)
    fig = plot.eigenvalues(net)
    (ax,) = fig.axes
    U = net.params["layers.0.U"].astype(np.float64)
    R = net.params["layers.0.R"].astype(np.float64)
    assert len(ax.collections) == 4
    for collection, block in zip(ax.collections, np.split(U, 4)):
        expected = np.linalg.eigvals(block @ R)
        points = collection.get_offsets()
        np.testing.assert_allclose(np.sort_complex(points[:, 0] + 1j * points[:, 1]),
                                   np.sort_complex(expected), atol=1e-6)
    circle = ax.lines[0]
    np.testing.assert_allclose(np.hypot(circle.get_xdata(), circle.get_ydata()), 1.0)


def test_eigenvalues_of_a_sparse_reservoir_and_a_bidirectional_layer():
    esn = network("esn", sparse=True, init={"recurrent": {"name": "sparse_random",
                                                          "connectivity": 0.5}})
    assert list(plot.recurrent_matrices(esn, 0)) == ["W"]
    elman = network(bidirectional=True)
    matrices = plot.recurrent_matrices(elman, 0)
    np.testing.assert_array_equal(matrices["U (reverse)"], elman.params["layers.0.U_reverse"])


def test_lyapunov_axes_skip_minus_infinity():
    fig = plot.lyapunov({"a": np.array([0.1, -0.5, -np.inf]), "b": [0.0, None]})
    (ax,) = fig.axes
    a, b = ax.lines[:2]
    np.testing.assert_array_equal(a.get_ydata(), [0.1, -0.5])
    np.testing.assert_array_equal(b.get_xdata(), [1])


def sweep_rows():
    rows = []
    for radius in (0.5, 1.0, 1.5):
        for units in (10, 20):
            for seed in (1, 2):
                value = None if (radius, units) == (1.5, 20) else radius * units + seed
                rows.append({"network.layers[0].spectral_radius": radius,
                             "network.layers[0].units": units, "seed": seed, "score": value})
    return rows


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_sweep_heat_map_averages_over_seeds(tmp_path, suffix):
    table = tmp_path / f"results{suffix}"
    rows = sweep_rows()
    write_table(table, rows, list(rows[0]))
    fig = plot.sweep(table, "network.layers[0].spectral_radius", "network.layers[0].units",
                     "score")
    grid = fig.axes[0].images[0].get_array()
    expected = np.array([[5.0, 10.0, 15.0], [10.0, 20.0, np.nan]]) + 1.5
    np.testing.assert_allclose(np.ma.filled(grid, np.nan), expected)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["0.5", "1", "1.5"]


def test_sweep_errors(tmp_path):
    table = tmp_path / "results.csv"
    rows = sweep_rows()
    write_table(table, rows, list(rows[0]))
    with pytest.raises(InputError, match=r"--y units: no such column \(did you mean "
                                         r"'network.layers\[0\].units'\?\)"):
        plot.sweep(table, "network.layers[0].spectral_radius", "units", "score")
    with pytest.raises(InputError, match="does not exist"):
        plot.sweep(tmp_path / "missing.csv", "a", "b", "c")


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_cli_plot_commands_write_images(tmp_path, suffix):
    config = write_config(tmp_path, "gru")
    for command in ("states", "eigenvalues", "lyapunov"):
        out = tmp_path / "images" / f"{command}.{suffix}"
        extra = ["--steps", 50, "--warmup", 10] if command == "lyapunov" else []
        assert f"wrote {out}" in invoke("plot", command, config, "-o", out, *extra)
        assert_image(out, suffix)
    table = tmp_path / "results.csv"
    rows = sweep_rows()
    write_table(table, rows, list(rows[0]))
    out = tmp_path / f"sweep.{suffix}"
    invoke("plot", "sweep", table, "--x", "network.layers[0].spectral_radius", "--y",
           "network.layers[0].units", "--metric", "score", "-o", out)
    assert_image(out, suffix)


def test_cli_plot_states_uses_the_given_or_drawn_input(tmp_path, monkeypatch):
    config = write_config(tmp_path)
    drawn = []
    real = plot.states
    monkeypatch.setattr(plot, "states", lambda net, x, units: drawn.append(x) or real(net, x,
                                                                                       units))
    invoke("plot", "states", config, "-T", 12, "--seed", 3, "-o", tmp_path / "a.png")
    net = rnnsim.Network.from_config(yaml.safe_load(config.read_text()))
    np.testing.assert_array_equal(drawn[0], draw_sequence(net, 12, 3))
    np.save(tmp_path / "x.npy", np.ones((7, 2)))
    invoke("plot", "states", config, "--input", tmp_path / "x.npy", "-o", tmp_path / "b.png")
    assert drawn[1].shape == (7, 2)
    invoke("plot", "states", config, "--input", tmp_path / "x.npy", "-T", 5, "-o",
           tmp_path / "c.png", code=2)


def test_cli_plot_lyapunov_draws_the_spectrum(tmp_path, monkeypatch):
    config = write_config(tmp_path)
    seen = {}
    monkeypatch.setattr(plot, "lyapunov", lambda spectra: seen.update(spectra) or
                        plot.eigenvalues(network()))
    invoke("plot", "lyapunov", config, "--steps", 40, "--warmup", 10, "--exponents", 3,
           "-o", tmp_path / "l.png")
    net = rnnsim.Network.from_config(yaml.safe_load(config.read_text()))
    expected = dynamics.lyapunov_spectrum(net, draw_sequence(net, 50, 0), warmup=10, k=3)
    np.testing.assert_allclose(seen["layer 0 (elman)"], expected)


def test_bad_output_name_and_failed_writes_leave_no_file(tmp_path):
    fig = plot.lyapunov([0.1, -0.2])
    with pytest.raises(InputError, match=r"pick a .png or .svg file name"):
        plot.save(fig, tmp_path / "out.jpg")

    class Broken:
        def savefig(self, *args, **kwargs):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        plot.save(Broken(), tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []
    out = invoke("plot", "eigenvalues", write_config(tmp_path), "-o", tmp_path / "e.pdf",
                 code=1)
    assert "InputError" in out and ".png or .svg" in out


def test_missing_matplotlib_gives_an_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(InputError, match=r"pip install 'rnnsim\[plot\]'"):
        plot.eigenvalues(network())
    out = invoke("plot", "eigenvalues", write_config(tmp_path), "-o", tmp_path / "e.png",
                 code=1)
    assert "matplotlib" in out and "rnnsim[plot]" in out
    assert not (tmp_path / "e.png").exists()


# --- what a newcomer hits (issue 16) ---------------------------------------------------------

def _drawn(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    return fig.canvas.get_renderer()


@pytest.mark.parametrize("cell, symbol", [("elman", "a_t"), ("gru", "h_t"), ("lstm", "h_t"),
                                          ("esn", "x_t")])
def test_states_are_labelled_with_the_cells_own_symbol_and_units(cell, symbol):
    """`plot states` labelled an elman layer's a_t as h_t and said '10 outputs per step'."""
    net = network(cell, bidirectional=cell == "gru")
    fig = plot.states(net, np.zeros((5, 2)))
    (ax,) = fig.axes
    assert ax.get_ylabel() == f"{symbol} (each unit)"
    width = "p = 6 units x 2 directions" if cell == "gru" else "p = 6 units"
    assert ax.get_title() == f"layer 0: {cell}, {symbol} of its {width}"
    assert "outputs" not in ax.get_title()


def test_step_and_index_axes_tick_whole_numbers_only():
    """A 4-step run got ticks at 1.5, 2.5...; 3 exponents too."""
    fig = plot.states(network(), np.zeros((4, 2)))
    lyap = plot.lyapunov({"a": [0.1, -0.2, -0.5]})
    for ax in (fig.axes[0], lyap.axes[0]):
        _drawn(ax.figure)
        ticks = ax.get_xticks()
        assert len(ticks) >= 2 and np.all(ticks == np.round(ticks)), ticks


def test_the_eigenvalue_legend_covers_no_eigenvalue():
    """The legend sat in the upper right, over an eigenvalue there."""
    net = network(units=2)
    net.params["layers.0.U"] = np.array([[0.6, -0.85], [0.85, 0.6]])  # 0.6 +- 0.85i
    fig = plot.eigenvalues(net)
    renderer = _drawn(fig)
    (ax,) = fig.axes
    legend = ax.get_legend().get_window_extent(renderer)
    points = ax.transData.transform(ax.collections[0].get_offsets())
    assert len(points) == 2
    assert not any(legend.contains(*point) for point in points)
    assert fig.bbox.contains(legend.x0, legend.y0) and fig.bbox.contains(legend.x1, legend.y1)


def test_heat_map_cell_labels_do_not_overlap_at_eleven_columns():
    """`plot sweep` printed overlapping cell values at 11 columns (the README's sweep)."""
    rows = [{"network.layers[0].init.recurrent.spectral_radius": 0.5 + 0.1 * i,
             "network.layers[0].units": units, "nrmse": 1.234e-5 * (i + 2) * units / 50}
            for i in range(11) for units in (50, 100)]
    fig = plot.sweep(rows, "network.layers[0].init.recurrent.spectral_radius",
                     "network.layers[0].units", "nrmse")
    renderer = _drawn(fig)
    ax = fig.axes[0]
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    assert len(boxes) == 22 and min(t.get_fontsize() for t in ax.texts) >= 6
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b)


def test_cli_plot_sweep_accepts_the_grid_alias_that_sweep_accepts(tmp_path):
    """`plot sweep --x 'network.layers[0].spectral_radius'` refused the alias `sweep --grid`
    accepts."""
    config = write_config(tmp_path)
    table = tmp_path / "t.csv"
    alias = "network.layers[0].spectral_radius"
    invoke("sweep", config, "--grid", f"{alias}=0.5,1.0", "--grid",
           "network.layers[0].units=4,6", "--metric", "spectral_radius", "-j", 1, "-q",
           "-o", table)
    out = tmp_path / "heat.png"
    invoke("plot", "sweep", table, "--x", alias, "--y", "network.layers[0].units",
           "--metric", "spectral_radius", "-o", out)
    assert_image(out, "png")
    fig = plot.sweep(table, alias, "network.layers[0].units", "spectral_radius")
    assert fig.axes[0].get_xlabel() == "spectral_radius (layer 0, init.recurrent)"
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), [[0.5, 1.0], [0.5, 1.0]])


def test_cli_plot_lyapunov_takes_steps_with_an_input(tmp_path, monkeypatch):
    """As `analyze`: --steps with --input uses the file's first WARMUP + STEPS steps."""
    config = write_config(tmp_path)
    u = np.random.default_rng(0).standard_normal((80, 2))
    np.save(tmp_path / "u.npy", u)
    seen = []
    real = dynamics.lyapunov_spectra
    monkeypatch.setattr(dynamics, "lyapunov_spectra", lambda net, x, **kw: seen.append(x) or
                        real(net, x, **kw))
    invoke("plot", "lyapunov", config, "--input", tmp_path / "u.npy", "--steps", 20,
           "--warmup", 10, "--exponents", 2, "-o", tmp_path / "l.png")
    np.testing.assert_array_equal(seen[0], u[:30])
    assert "need 200 steps" in invoke("plot", "lyapunov", config, "--input", tmp_path / "u.npy",
                                      "--steps", 100, "-o", tmp_path / "m.png", code=2)


def test_cli_plot_memory_draws_the_held_out_curve(tmp_path, monkeypatch):
    path = tmp_path / "esn.yaml"
    config = {"network": {"input_size": 1, "dtype": "float64", "seed": 2, "layers": [
        {"cell": "esn", "units": 12, "activation": "tanh"}]},
        "run": {"memory_capacity": {"max_delay": 15, "ridge": 1e-6, "washout": 50}}}
    path.write_text(yaml.safe_dump(config))
    seen = {}
    real = plot.memory
    monkeypatch.setattr(plot, "memory", lambda curve: seen.update(curve) or real(curve))
    invoke("plot", "memory", path, "--steps", 600, "-o", tmp_path / "m.png")
    assert (tmp_path / "m.png").stat().st_size > 0
    from rnnsim.reservoir import memory_curve
    net = rnnsim.Network.from_config(config)
    expected = memory_curve(net, max_delay=15, timesteps=600, washout=50, ridge=1e-6)
    np.testing.assert_array_equal(seen["r2"], expected["r2"])
    assert list(seen["delays"]) == list(range(1, 16)) and seen["test_fraction"] == 0.5
    (line,) = real(expected).axes[0].lines
    np.testing.assert_array_equal(line.get_ydata(), expected["r2"])


def test_sweep_heat_map_median_log_scale_and_labels(tmp_path):
    """Four decades of NRMSE and one bad seed: the median ignores the seed, the colour scale
    turns logarithmic (auto or --log), and the axes read as words, ticks to 3 digits."""
    from matplotlib.colors import LogNorm

    rows = []
    for i, radius in enumerate(np.geomspace(0.1, 10, 5)):
        for leak in (0.25, 1.0):
            for seed, bad in ((1, 1.0), (2, 1.0), (3, 1e6)):
                rows.append({"network.layers[0].init.recurrent.spectral_radius": float(radius),
                             "network.layers[0].leak_rate": leak, "seed": seed,
                             "nrmse": 10.0 ** -i * leak * bad})
    fig = plot.sweep(rows, "network.layers[0].spectral_radius", "network.layers[0].leak_rate",
                     "nrmse")
    ax = fig.axes[0]
    grid = np.ma.filled(ax.images[0].get_array(), np.nan)
    np.testing.assert_allclose(grid[1], [10.0 ** -i for i in range(5)])  # the median
    assert isinstance(ax.images[0].norm, LogNorm)
    assert ax.get_xlabel() == "spectral_radius (layer 0, init.recurrent)"
    assert ax.get_ylabel() == "leak_rate (layer 0)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.1", "0.316", "1", "3.16", "10"]
    mean = plot.sweep(rows, "network.layers[0].spectral_radius", "network.layers[0].leak_rate",
                      "nrmse", scale="linear", stat="mean")
    assert not isinstance(mean.axes[0].images[0].norm, LogNorm)
    assert np.ma.filled(mean.axes[0].images[0].get_array(), np.nan)[1, 0] > 3e5
    table = tmp_path / "t.csv"
    write_table(table, rows, list(rows[0]))
    invoke("plot", "sweep", table, "--x", "network.layers[0].spectral_radius", "--y",
           "network.layers[0].leak_rate", "--metric", "nrmse", "--log", "--stat", "mean",
           "-o", tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 0
    for row in rows[:3]:
        row["nrmse"] = -1.0
    with pytest.raises(InputError, match="log colour scale"):
        plot.sweep(rows, "network.layers[0].spectral_radius", "network.layers[0].leak_rate",
                   "nrmse", scale="log")
