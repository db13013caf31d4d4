"""The compiled build (mypyc, see ``setup.py``) of a source checkout, in a directory of
its own.

Benchmarks measure it beside the pure-Python build, and ``tests/run`` runs the test
suite against it too, so both builds are held to the same tests: this module is what
both use (``bench/compiled.py`` is its command line; ``tests/conftest.py`` checks a
compiled test pass with ``compiled_modules`` and ``stale``). Every function takes the
checkout's root, since this module may itself be imported from a compiled install. The directory holds a
complete non-editable install of Carewatch (``pip install --target``) made from a
temporary copy of the working tree, edits not yet committed included, with the mypy (and
so mypyc) and setuptools of this environment, not ones fetched for the build: the
compiler is the type checker the tests run. It is rebuilt whenever a file of the
package, those versions or the C compiler settings (``CC``, ``CFLAGS``) differ from what
it was built with; ``tests/conftest.py`` refuses a compiled test pass over a stale one.
Run with ``PYTHONPATH=DIR`` in front and it replaces the editable install for that
process. A directory that holds anything but such a build is never overwritten.

Usage (from the checkout's root):
    .venv/bin/python bench/compiled.py            # build if stale; print the directory
    .venv/bin/python bench/compiled.py --dir DIR  # somewhere else
"""

from __future__ import annotations

import ast
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["SOURCES", "compiled_modules", "default_dir", "ensure", "environ", "stale"]

#: What the install is made from (the package's files and its build description).
SOURCES = ("pyproject.toml", "setup.py", "README.md", "detectors", "streams")
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.pyd")
_STAMP = ".carewatch-fingerprint"


def default_dir(root: Path) -> Path:
    """Where the build of the checkout at ``root`` goes unless told otherwise."""
    return root / "build" / "compiled"


def compiled_modules(root: Path) -> list[str]:
    """The module names ``root/setup.py`` compiles (its ``COMPILED`` list, read, not run)."""
    tree = ast.parse((root / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "COMPILED" for t in node.targets
        ):
            paths = ast.literal_eval(node.value)
            return [p.removesuffix(".py").replace("/", ".") for p in paths]
    raise RuntimeError("setup.py has no COMPILED list")


def _fingerprint(root: Path) -> str:
    from importlib.metadata import version

    tools = [sys.version, version("mypy"), version("setuptools")]
    tools += [os.environ.get(name, "") for name in ("CC", "CFLAGS", "LDFLAGS")]
    h = hashlib.sha256("\0".join(tools).encode())
    for name in SOURCES:
        top = root / name
        files = sorted(top.rglob("*")) if top.is_dir() else [top]
        for f in files:
            if f.is_dir() or "__pycache__" in f.parts or f.suffix in (".pyc", ".so", ".pyd"):
                continue
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def missing_extensions(root: Path, target: Path) -> list[str]:
    """Modules of ``compiled_modules(root)`` with no extension module under ``target``."""
    missing = []
    for mod in compiled_modules(root):
        parent = target.joinpath(*mod.split(".")[:-1])
        leaf = mod.rsplit(".", 1)[-1]
        if not any(parent.glob(f"{leaf}.*.so")) and not any(parent.glob(f"{leaf}.*.pyd")):
            missing.append(mod)
    return missing


def stale(root: Path, target: Path) -> bool:
    """Whether the build in ``target`` is missing, incomplete or older than the sources
    of the checkout at ``root``."""
    stamp = target / _STAMP
    return (
        not stamp.exists()
        or stamp.read_text() != _fingerprint(root)
        or bool(missing_extensions(root, target))
    )


def ensure(root: Path, target: Path | None = None, *, quiet: bool = False) -> Path:
    """Build the compiled install of the checkout at ``root`` into ``target`` (default:
    ``default_dir(root)``) unless it is already up to date; return ``target``."""
    target = default_dir(root) if target is None else target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time into the same place
        if not stale(root, target):
            return target
        if target.exists() and any(target.iterdir()) and not (target / _STAMP).exists():
            raise RuntimeError(
                f"{target} is not empty and holds no compiled build of Carewatch: "
                "not overwriting it; choose another --dir"
            )
        if not quiet:
            print(f"building the compiled Carewatch into {target} ...", file=sys.stderr)
        _build(root, target)
        return target


def _build(root: Path, target: Path) -> None:
    fingerprint = _fingerprint(root)
    shutil.rmtree(target, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="carewatch-compile-") as tmp:
        src = Path(tmp) / "src"
        for name in SOURCES:
            if (root / name).is_dir():
                shutil.copytree(root / name, src / name, ignore=_SKIP)
            else:
                src.mkdir(parents=True, exist_ok=True)
                shutil.copy2(root / name, src / name)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                # this environment's mypy and setuptools (see the module docstring)
                "--no-build-isolation",
                "--target",
                str(target),
                str(src),
            ],
            env={**os.environ, "CAREWATCH_COMPILE": "1"},
            check=True,
            stdout=subprocess.DEVNULL,
        )
    missing = missing_extensions(root, target)
    if missing:
        raise RuntimeError(f"the compiled build has no extension module for {missing}")
    (target / _STAMP).write_text(fingerprint)


def environ(target: Path) -> dict[str, str]:
    """This process's environment with ``target`` first on the module path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(target), env.get("PYTHONPATH")) if p)
    return env
