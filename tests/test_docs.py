"""The plugin author's guide documents every hook and shows the example package verbatim."""
import inspect
import re
from pathlib import Path

from rnnsim import hookspecs

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "docs" / "plugins.md").read_text()


def test_every_hookspec_is_documented_with_its_signature():
    specs = [name for name, fn in vars(hookspecs).items()
             if callable(fn) and hasattr(fn, "rnnsim_spec")]
    assert specs
    for name in specs:
        signature = f"def {name}{inspect.signature(getattr(hookspecs, name))}"
        signature = signature.replace("typing.", "")
        assert signature in GUIDE, signature


def test_example_files_are_quoted_verbatim():
    blocks = re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```\n", GUIDE, flags=re.S)
    assert len(blocks) >= 3
    for path, text in blocks:
        assert (ROOT / path).read_text() == text, path


def console_blocks(text):
    """(command, expected output) for every ```console block that starts with '$ rnnsim'."""
    for block in re.findall(r"```console\n(.*?)```\n", text, flags=re.S):
        command, _, output = block.partition("\n")
        if command.startswith("$ rnnsim ") and output:
            yield command[2:], output


def test_every_command_in_the_tutorial_gives_the_output_shown():
    import os
    import shlex

    from click.testing import CliRunner

    from rnnsim.cli import cli

    text = (ROOT / "docs" / "units-vs-timesteps.md").read_text()
    blocks = list(console_blocks(text))
    assert len(blocks) >= 3
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        for command, expected in blocks:
            result = CliRunner().invoke(cli, shlex.split(command)[1:])
            assert result.exit_code == 0, result.output
            assert result.output == expected, command
    finally:
        os.chdir(cwd)
