"""The learner's and the plugin author's commands: explain, new-plugin, broken plugins."""
import subprocess
import sys
import tomllib
from pathlib import Path

import importlib.metadata
import pytest
from click.testing import CliRunner

from rnnsim import plugins
from rnnsim.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def test_explain_plots_the_loop_and_the_traces(tmp_path):
    png = tmp_path / "loop.png"
    result = CliRunner().invoke(cli, ["explain", str(ROOT / "configs" / "quickstart.yaml"),
                                      "-T", "5", "-T", "50", "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert "T = 5 " in result.output and "T = 50 " in result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_new_plugin_scaffold_passes_its_own_test(tmp_path):
    result = CliRunner().invoke(cli, ["new-plugin", "demo-acts", "-d", str(tmp_path)])
    assert result.exit_code == 0, result.output
    package = tmp_path / "rnnsim-demo-acts"
    meta = tomllib.loads((package / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["rnnsim"] == {"demo_acts": "rnnsim_demo_acts"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(package)], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout
    again = CliRunner().invoke(cli, ["new-plugin", "demo-acts", "-d", str(tmp_path)])
    assert again.exit_code == 1 and "already exists" in again.output


@pytest.mark.parametrize("folder", sorted((ROOT / "plugins").glob("*/pyproject.toml")),
                         ids=lambda p: p.parent.name)
def test_every_first_party_plugin_is_installed_and_discovered(folder):
    name = tomllib.loads(folder.read_text())["project"]["name"]
    dist = importlib.metadata.distribution(name)
    entry_points = [ep for ep in dist.entry_points if ep.group == "rnnsim"]
    assert entry_points, f"{name} declares no entry point in group 'rnnsim'"
    rows = [r for r in plugins.describe() if r["package"] == name]
    assert rows and all(r["version"] == dist.version for r in rows)
    listing = CliRunner().invoke(cli, ["plugins"]).output
    assert f"{name} {dist.version}" in listing


def test_skip_broken_plugins_warns_and_goes_on(installed, monkeypatch):
    installed("rnnsim-boom", "1.0", "[rnnsim]\nbroken = rnnsim_boom:plugin\n",
              rnnsim_boom="raise RuntimeError('boom')\n")
    monkeypatch.setenv("RNNSIM_SKIP_BROKEN_PLUGINS", "0")  # restored (unset) on undo
    plugins.reset()
    try:
        failing = CliRunner().invoke(cli, ["plugins"])
        assert failing.exit_code == 1 and "plugin 'broken'" in failing.output
        with pytest.warns(RuntimeWarning, match="RuntimeError: boom.*was skipped"):
            skipping = CliRunner().invoke(cli, ["--skip-broken-plugins", "plugins"])
        assert skipping.exit_code == 0 and "tanh" in skipping.output
    finally:
        monkeypatch.undo()
        plugins.reset()
