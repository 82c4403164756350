"""YAML read with ``SafeLoader``: bounded, strict, with errors that name the file, the line
and the column. Its own module, so that commands that read no file (``rnnsim plugins``) do not
import yaml."""
from __future__ import annotations

from pathlib import Path

import yaml

from .errors import ConfigError, shown


# Bounds on a YAML file: its bytes, its nesting and the values it holds once aliases are
# expanded (an alias of an alias of a list can stand for billions of values).
MAX_YAML_BYTES = 16 << 20
MAX_YAML_DEPTH = 100
MAX_YAML_VALUES = 1_000_000


class YAMLBoundError(yaml.MarkedYAMLError):
    """YAML that parses but breaks one of ``SafeLoader``'s rules; the problem says the fix."""


class SafeLoader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader, bounded and strict: no YAML 1.1 base-60 numbers (``1:2:10``,
    a sweep range, stays the string '1:2:10' instead of becoming 3730), no key given twice in
    one mapping, at most ``MAX_YAML_DEPTH`` levels of nesting and ``MAX_YAML_VALUES`` values
    with aliases expanded."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise YAMLBoundError(
                    None, None, f"values nested more than {MAX_YAML_DEPTH} levels deep; a "
                    "config needs a few", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self):
        node = super().compose_document()
        if node is not None:
            _check_expanded(node)
        return node

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first: dict = {}  # key -> the line it first appears on
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # '<<' keys may be overridden
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    line = first.get(key)
                except TypeError:  # an unhashable key: the base class reports it
                    continue
                if line is not None:
                    raise YAMLBoundError(
                        None, None, f"key {shown(key)} is given twice in one mapping (first at "
                        f"line {line}); keep one", key_node.start_mark)
                first[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def _check_expanded(root) -> None:
    """A ``YAMLBoundError`` when ``root`` with its aliases expanded holds more than
    ``MAX_YAML_VALUES`` values or nests deeper than ``MAX_YAML_DEPTH``, or when an alias sits
    inside the value it refers to. Each node is visited once, without recursion (aliases can
    nest far deeper than the text)."""
    sizes: dict[int, tuple[int, int]] = {}  # node -> (values, depth) once expanded
    open_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack[-1]
        if id(node) in sizes:
            stack.pop()
            continue
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else []
        pending = [c for c in children if id(c) not in sizes]
        if not pending:
            sizes[id(node)] = (1 + sum(sizes[id(c)][0] for c in children),
                               1 + max((sizes[id(c)][1] for c in children), default=0))
            open_nodes.discard(id(node))
            stack.pop()
        elif id(node) in open_nodes:  # its children are done, or one of them is itself
            raise YAMLBoundError(None, None, "an alias refers to a value that contains it; "
                                 "write the value out", node.start_mark)
        else:
            open_nodes.add(id(node))
            stack.extend(pending)
    values, depth = sizes[id(root)]
    if values > MAX_YAML_VALUES:
        raise YAMLBoundError(None, None, f"its aliases (*name) expand to more than "
                             f"{MAX_YAML_VALUES:,} values; write the values out, or use fewer "
                             "aliases", root.start_mark)
    if depth > MAX_YAML_DEPTH:
        raise YAMLBoundError(None, None, f"its aliases (*name) nest values more than "
                             f"{MAX_YAML_DEPTH} levels deep; a config needs a few",
                             root.start_mark)


def _without_base_60(construct):
    def construct_number(loader, node):
        return loader.construct_scalar(node) if ":" in node.value else construct(loader, node)

    return construct_number


for _tag, _construct in (("int", yaml.SafeLoader.construct_yaml_int),
                         ("float", yaml.SafeLoader.construct_yaml_float)):
    SafeLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _without_base_60(_construct))


def load_yaml(text: str, origin: str, error=ConfigError):
    """The value in the YAML ``text`` read with ``SafeLoader``; ``error`` naming ``origin``
    (with the line and column) when it is not valid or breaks a bound on its values. The
    caller bounds the text's size (``read_yaml_file`` reads at most ``MAX_YAML_BYTES``)."""
    try:
        return yaml.load(text, Loader=SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        hint = "" if isinstance(exc, YAMLBoundError) else (
            " Check indentation and that every 'key: value' pair has a space after the colon.")
        raise error(f"{origin} is not valid YAML{where}: {problem}.{hint}") from None


def read_yaml_file(path: str | Path, origin: str, error=ConfigError):
    """The value in the YAML file ``path``, read at most ``MAX_YAML_BYTES`` with
    ``load_yaml``; ``error`` naming ``origin`` when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_YAML_BYTES + 1)
        if len(raw) > MAX_YAML_BYTES:
            raise error(f"{origin} is larger than {MAX_YAML_BYTES >> 20} MiB, more than any "
                        "config needs. Check that it is the file you meant.")
        text = raw.decode()
    except FileNotFoundError:
        raise error(f"{origin} does not exist. Check the path.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{origin} cannot be read: {exc}.") from None
    return load_yaml(text, origin, error)
