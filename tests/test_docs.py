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
