"""rnnsim.distributions answers as importlib.metadata does, on the installed packages and on
distributions laid out in temporary folders on sys.path."""
import importlib.metadata
import sys
import tempfile
import zipfile
from importlib.machinery import PathFinder
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from rnnsim import distributions


@pytest.fixture(autouse=True)
def standard_finders(monkeypatch):
    """sys.meta_path as in a process that has not imported the importlib_metadata backport
    (some test dependencies do: it puts a finder of its own first, with which rnnsim leaves
    every answer to importlib.metadata), so that rnnsim reads the folders itself here."""
    monkeypatch.setattr(sys, "meta_path", [finder for finder in sys.meta_path
                                           if not hasattr(finder, "find_distributions")])
    monkeypatch.setattr(PathFinder, "find_distributions",
                        importlib.metadata.MetadataPathFinder.find_distributions, raising=False)
    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, PathFinder])


def fell_back(*args, **kwargs):
    raise AssertionError("rnnsim.distributions asked importlib.metadata")


def expected(group: str) -> list[tuple]:
    return [(ep.name, ep.value, ep.group, ep.dist.name, ep.dist.version)
            for ep in importlib.metadata.entry_points(group=group)]


def found(group: str) -> list[tuple]:
    return [tuple(ep) for ep in distributions.entry_points(group)]


def expected_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def write_dist(folder: Path, stem: str, name: str, version: str, entry_points: str | None,
               suffix: str = ".dist-info") -> Path:
    info = folder / f"{stem}{suffix}"
    info.mkdir(parents=True)
    metadata = "METADATA" if suffix == ".dist-info" else "PKG-INFO"
    (info / metadata).write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                 "Summary: x\n\nName: not-a-header\n")
    if entry_points is not None:
        (info / "entry_points.txt").write_text(entry_points)
    return info


@pytest.mark.parametrize("group", ["rnnsim", "console_scripts", "pytest11", "no-such-group"])
def test_the_installed_entry_points_are_importlib_metadatas(group):
    assert found(group) == expected(group)


def test_the_installed_plugins_are_found_with_their_packages():
    names = {ep.name: ep.package for ep in distributions.entry_points("rnnsim")}
    assert names["ugrnn"] == "rnnsim-ugrnn"  # plugins/rnnsim-ugrnn, an editable install


@pytest.mark.parametrize("package", ["rnnsim", "numpy", "pydantic", "rnnsim-ugrnn",
                                     "RNNSIM_UGRNN", "PyYAML", "pyyaml"])
def test_versions_are_importlib_metadatas(package):
    assert distributions.version(package) == importlib.metadata.version(package)


def test_a_package_that_is_not_installed_has_no_version():
    assert distributions.version("no-such-package-anywhere") is None


def test_layouts_on_sys_path(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    # the same distribution in two folders: the first on sys.path wins, its entry points only
    write_dist(first, "Foo.Bar-1.0", "Foo.Bar", "1.0", "[g]\na = m:first\n")
    write_dist(second, "foo_bar-2.0", "foo-bar", "2.0", "[g]\na = m:second\nb = m:b\n")
    # comments, blank lines, spaces, extras, a bare module, a dotted attribute, other groups
    write_dist(second, "other-3", "other", "3", "# c\n\n[h]\nz = q\n[ g ]\nx=y\n[g]\n"
               "  c = pkg.mod : obj.attr [extra1, extra2]  \nd = mod\n")
    write_dist(second, "legacy-0.1", "legacy", "0.1", "[g]\ne = legacy:run\n", ".egg-info")
    write_dist(second, "noentries-1", "noentries", "1", None)
    (second / "single-4.egg-info").write_text("Metadata-Version: 1.0\nName: single\n"
                                              "Version: 4\n")
    (second / "notes.txt").write_text("")
    monkeypatch.setattr(sys, "path", [str(tmp_path / "missing"), str(first), str(second)])
    groups, names = ("g", "h", " g "), ("foo-bar", "FOO_BAR", "legacy", "single", "noentries",
                                         "other")
    theirs = [expected(group) for group in groups], [expected_version(n) for n in names]
    monkeypatch.setattr(importlib.metadata, "entry_points", fell_back)
    monkeypatch.setattr(importlib.metadata, "version", fell_back)
    assert ([found(group) for group in groups],
            [distributions.version(n) for n in names]) == theirs


def test_a_zip_on_sys_path_is_read_by_importlib_metadata(tmp_path, monkeypatch):
    archive = tmp_path / "dists.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("zipped-1.0.dist-info/METADATA", "Name: zipped\nVersion: 1.0\n")
        zf.writestr("zipped-1.0.dist-info/entry_points.txt", "[g]\nz = zipped:plugin\n")
    monkeypatch.setattr(sys, "path", [str(archive)])
    assert found("g") == expected("g") == [("z", "zipped:plugin", "g", "zipped", "1.0")]
    assert distributions.version("zipped") == "1.0"


def test_a_finder_with_distributions_of_its_own_is_asked(tmp_path, monkeypatch):
    info = write_dist(tmp_path, "hooked-5", "hooked", "5", "[g]\nk = hooked:plugin\n")

    class Finder:
        @staticmethod
        def find_spec(*args):
            return None

        @staticmethod
        def find_distributions(context=None):
            return iter([importlib.metadata.PathDistribution(info)])

    monkeypatch.setattr(sys, "path", [])
    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Finder])
    assert found("g") == expected("g") == [("k", "hooked:plugin", "g", "hooked", "5")]
    assert distributions.version("hooked") == "5"


def test_a_malformed_entry_points_file_fails_as_in_importlib_metadata(tmp_path, monkeypatch):
    write_dist(tmp_path, "bad-1", "bad", "1", "[g]\nno equals sign\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    with pytest.raises(Exception) as ours:
        distributions.entry_points("g")
    with pytest.raises(Exception) as theirs:
        importlib.metadata.entry_points(group="g")
    assert type(ours.value) is type(theirs.value)


@pytest.mark.parametrize("value", ["json:dumps", "json", "os.path:join", "os : path.join",
                                   "json:dumps [extra]", "collections.abc:Mapping"])
def test_load_imports_what_importlib_metadata_imports(value):
    theirs = importlib.metadata.EntryPoint(name="n", value=value, group="g").load()
    assert distributions.EntryPoint("n", value, "g", None, None).load() is theirs


names = st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,2}([-_.][A-Za-z0-9]{1,2}){0,2}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(names, st.integers(0, 2), st.sampled_from([".dist-info", ".egg-info"]),
                          st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from("gh")),
                                   max_size=3)),
                max_size=6))
def test_random_layouts_match_importlib_metadata(dists):
    """Distributions with clashing names (case, separators) spread over three folders; a
    folder named with the name's own '-' (not as wheels escape it) is found as importlib
    finds it, by the part before the first '-'."""
    with tempfile.TemporaryDirectory() as tmp:
        folders = [Path(tmp, str(i)) for i in range(3)]
        for folder in folders:
            folder.mkdir()
        for index, (name, where, suffix, eps) in enumerate(dists):
            stem = f"{name}-{index}.0"
            if (folders[where] / f"{stem}{suffix}").exists():
                continue
            text = "".join(f"[{group}]\n{ep} = mod{index}:{ep}\n" for ep, group in eps)
            write_dist(folders[where], stem, name, f"{index}.0", text, suffix)
        saved = sys.path[:]
        sys.path[:] = [str(f) for f in folders]
        try:
            for group in "gh":
                assert found(group) == expected(group)
            for name, *_ in dists:
                assert distributions.version(name) == expected_version(name)
        finally:
            sys.path[:] = saved
