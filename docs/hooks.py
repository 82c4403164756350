"""mkdocs hooks of `make docs`: the figures the commands draw, the benchmark results and the
config schema are made by the build and added to the site, never committed."""
from __future__ import annotations

import os
import shlex
import tempfile
from pathlib import Path

from click.testing import CliRunner
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
# Site path -> the rnnsim command that draws it (OUT: where it writes).
FIGURES = {
    "figures/explain-quickstart.png": "explain configs/quickstart.yaml -T 20 -T 60 --plot OUT",
    "figures/states-quickstart.png": "plot states configs/quickstart.yaml -T 200 -o OUT",
    "figures/eigenvalues-mackey-glass.png": "plot eigenvalues configs/mackey_glass.yaml -o OUT",
    "figures/lyapunov-quickstart.png": "plot lyapunov configs/quickstart.yaml --steps 500 -o OUT",
}
# Repository files outside docs/ that pages link to, and the site page that shows each.
OUTSIDE = {"../benchmarks/RESULTS.md": "benchmarks.md"}


def draw(command: str) -> bytes:
    """Run ``rnnsim COMMAND`` (from the repository root) with OUT replaced by a temporary
    file; its bytes. A failing command fails the build."""
    from rnnsim.cli import cli

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "figure.png"
        args = [str(out) if arg == "OUT" else arg for arg in shlex.split(command)]
        cwd = os.getcwd()
        os.chdir(ROOT)
        try:
            result = CliRunner().invoke(cli, args)
        finally:
            os.chdir(cwd)
        if result.exit_code != 0:
            raise RuntimeError(f"`rnnsim {command}` failed: {result.output}{result.exception}")
        return out.read_bytes()


def on_files(files, config):
    from rnnsim import schema

    for path, command in FIGURES.items():
        files.append(File.generated(config, path, content=draw(command)))
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    files.append(File.generated(config, "benchmarks.md", content=results))
    files.append(File.generated(config, "rnnsim.schema.json",
                                content=schema.dumps(schema.json_schema())))
    return files


def on_page_markdown(markdown: str, page, config, files):
    for outside, inside in OUTSIDE.items():
        markdown = markdown.replace(f"]({outside})", f"]({inside})")
    return markdown
