"""A rules file's ``plugins:`` is code: ``rules check`` validates the names without
importing them (unless asked), and a plugin module in a world-writable directory is
refused before it runs."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from detectors.errors import RulesError
from detectors.rules import load_settings
from streams.cli import main

PLUGIN = """
import os
from pathlib import Path

from detectors.contract import ExpectationDetector

Path(os.environ["PLUGIN_MARKER"]).write_text("imported")


class LetterAfterDna(ExpectationDetector):
    name = "letter-after-dna"
    key_ref = "appointment"
    opens = ("appointment.missed",)
    closes = ("patient.notified",)

    def deadline(self, event):
        return event.time + 86400.0
"""


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on the Python path with a package holding a plugin that leaves a
    marker file when imported."""
    where = tmp_path / "site"
    (where / "trust_plugins").mkdir(parents=True)
    (where / "trust_plugins" / "__init__.py").write_text(
        "import os\nfrom pathlib import Path\n"
        "Path(os.environ['PLUGIN_MARKER'] + '.pkg').write_text('imported')\n"
    )
    (where / "trust_plugins" / "dna.py").write_text(PLUGIN)
    os.chmod(where, 0o755)
    yield from _on_path(where, "trust_plugins", tmp_path, monkeypatch)


def _on_path(
    where: Path, package: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Put ``where`` first on the Python path for a test (its plugin's marker file under
    ``tmp_path``); afterwards forget every module of ``package`` imported from it."""
    monkeypatch.setenv("PLUGIN_MARKER", str(tmp_path / "marker"))
    monkeypatch.syspath_prepend(str(where))
    yield where
    for name in [n for n in sys.modules if n.startswith(package)]:
        del sys.modules[name]


def rules(tmp_path: Path, spec: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(f"plugins:\n  - {spec}\n")
    return path


def test_rules_check_names_plugins_without_importing_them(
    plugin_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = rules(tmp_path, "trust_plugins.dna:LetterAfterDna")
    assert main(["rules", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "trust_plugins.dna:LetterAfterDna" in out and "not imported" in out
    assert not (tmp_path / "marker").exists() and not (tmp_path / "marker.pkg").exists()


def test_rules_check_imports_plugins_when_asked(
    plugin_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = rules(tmp_path, "trust_plugins.dna:LetterAfterDna")
    assert main(["rules", "check", "--import-plugins", str(path)]) == 0
    assert "letter-after-dna (expectation)" in capsys.readouterr().out
    assert (tmp_path / "marker").read_text() == "imported"


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("trust_plugins.nope:LetterAfterDna", "no module named 'trust_plugins.nope'"),
        ("no_such_package.dna:X", "no module named 'no_such_package'"),
        ("trust_plugins.dna", "a plugin is written 'package.module:ClassName'"),
        ("trust plugins.dna:X", "not 'package.module:ClassName'"),
    ],
)
def test_rules_check_refuses_bad_plugin_names_without_importing(
    plugin_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str, says: str
) -> None:
    path = rules(tmp_path, spec)
    assert main(["rules", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert says in err and f"{path}:2" in err
    assert not (tmp_path / "marker.pkg").exists()


def test_a_plugin_in_a_world_writable_directory_is_refused_before_it_runs(
    plugin_dir: Path, tmp_path: Path
) -> None:
    os.chmod(plugin_dir / "trust_plugins", 0o777)
    path = rules(tmp_path, "trust_plugins.dna:LetterAfterDna")
    with pytest.raises(RulesError, match=r"site/trust_plugins is world-writable"):
        load_settings(path)
    assert not (tmp_path / "marker").exists() and not (tmp_path / "marker.pkg").exists()


def test_a_world_writable_path_entry_is_refused_too(plugin_dir: Path, tmp_path: Path) -> None:
    # anybody could drop a module of the plugin's name there
    os.chmod(plugin_dir, 0o1777)
    path = rules(tmp_path, "trust_plugins.dna:LetterAfterDna")
    with pytest.raises(RulesError, match="world-writable"):
        load_settings(path)


def test_a_plugin_in_a_private_directory_loads(plugin_dir: Path, tmp_path: Path) -> None:
    settings = load_settings(rules(tmp_path, "trust_plugins.dna:LetterAfterDna"))
    assert "letter-after-dna" in [d.name for d in settings.detectors]


@pytest.fixture
def namespace_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on the Python path holding the plugin in namespace packages
    (directories without ``__init__.py``): ``trust_ns.dna`` and ``trust_ns.deep.dna``."""
    where = tmp_path / "ns-site"
    (where / "trust_ns" / "deep").mkdir(parents=True)
    (where / "trust_ns" / "dna.py").write_text(PLUGIN)
    (where / "trust_ns" / "deep" / "dna.py").write_text(PLUGIN)
    for place in (where, where / "trust_ns", where / "trust_ns" / "deep"):
        os.chmod(place, 0o755)
    yield from _on_path(where, "trust_ns", tmp_path, monkeypatch)


@pytest.mark.parametrize(
    "spec", ["trust_ns.dna:LetterAfterDna", "trust_ns.deep.dna:LetterAfterDna"]
)
def test_a_namespace_package_plugin_in_a_private_directory_loads(
    namespace_dir: Path, tmp_path: Path, spec: str
) -> None:
    load_settings(rules(tmp_path, spec), import_plugins=False)  # found, not imported
    assert not (tmp_path / "marker").exists()
    settings = load_settings(rules(tmp_path, spec))
    assert "letter-after-dna" in [d.name for d in settings.detectors]


@pytest.mark.parametrize(
    ("writable", "spec"),
    [
        (".", "trust_ns.dna:LetterAfterDna"),  # the path entry the package is found under
        ("trust_ns", "trust_ns.deep.dna:LetterAfterDna"),
        ("trust_ns/deep", "trust_ns.deep.dna:LetterAfterDna"),
    ],
)
def test_a_namespace_package_plugin_under_a_world_writable_directory_is_refused(
    namespace_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    writable: str,
    spec: str,
) -> None:
    os.chmod(namespace_dir / writable, 0o777)
    path = rules(tmp_path, spec)
    assert main(["rules", "check", "--import-plugins", str(path)]) == 2
    assert "world-writable" in capsys.readouterr().err
    assert not (tmp_path / "marker").exists()


def test_a_world_writable_portion_of_a_namespace_package_is_refused(
    namespace_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another directory of the same namespace package, earlier on the path, where
    # anybody could drop a trust_ns/dna.py that would be imported instead.
    other = tmp_path / "open-site"
    (other / "trust_ns").mkdir(parents=True)
    os.chmod(other, 0o755)
    os.chmod(other / "trust_ns", 0o777)
    monkeypatch.syspath_prepend(str(other))
    with pytest.raises(RulesError, match=r"open-site/trust_ns is world-writable"):
        load_settings(rules(tmp_path, "trust_ns.dna:LetterAfterDna"))
    assert not (tmp_path / "marker").exists()
