"""Plugin detectors named in a rules file (``plugins: [package.module:ClassName]``).

A plugin is code: importing it runs it with the rights of whoever runs Carewatch. So a
plugin's name is checked and its module found *without importing anything* (the module
and its packages are located through the import system's finders, whose job is only to
find), and a module that anybody on the machine could have written or replaced (its
file, a directory between the Python path entry and it, or that path entry itself is
world-writable) is refused before it is ever imported. Namespace packages (directories
without ``__init__.py``) are no exception: every directory such a package spans, and the
path entry holding each, is checked, since a module dropped into any of them could be
the one imported.
"""

from __future__ import annotations

import os
import pkgutil
import re
import stat
import sys
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path

__all__ = ["PluginRefused", "locate_plugin", "split_plugin"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class PluginRefused(ValueError):
    """A plugin entry that cannot be, or must not be, imported; the message says why."""


def split_plugin(spec: object) -> tuple[str, str]:
    """``("package.module", "ClassName")`` from ``"package.module:ClassName"``."""
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise PluginRefused("a plugin is written 'package.module:ClassName'")
    module_name, _, class_name = spec.partition(":")
    parts = [*module_name.split("."), class_name]
    if not all(_NAME.fullmatch(part) for part in parts):
        raise PluginRefused(
            f"{spec!r} is not 'package.module:ClassName' (Python names joined by dots)"
        )
    return module_name, class_name


def locate_plugin(module_name: str) -> ModuleSpec | None:
    """Find ``module_name`` without importing it or its packages, and refuse it when a
    file or directory it would be loaded from is world-writable. Returns the module's
    spec (``None`` for a module built into the interpreter); raises ``PluginRefused``."""
    if module_name in sys.builtin_module_names:
        return None
    parts = module_name.split(".")
    search: list[str] | None = None  # None: the top level, found on sys.path
    chain: list[ModuleSpec] = []
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        spec = _find(name, search)
        if spec is None:
            raise PluginRefused(
                f"no module named {name!r} on the Python path (install it, or add its "
                "directory to PYTHONPATH)"
            )
        chain.append(spec)
        if i < len(parts) - 1:
            search = list(spec.submodule_search_locations or [])
            if not search:
                raise PluginRefused(f"{name!r} is not a package, so it holds no {parts[i + 1]!r}")
    for place in _places(chain):
        if _world_writable(place):
            raise PluginRefused(
                f"refusing to import {module_name!r}: {place} is world-writable, so anybody "
                "on this machine could change the code it runs; make it writable by its "
                "owner only (chmod o-w)"
            )
    return chain[-1]


def _find(name: str, search: list[str] | None) -> ModuleSpec | None:
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__spec__", None) is not None:
        return loaded.__spec__
    for finder in sys.meta_path:
        if finder is PathFinder:
            # The path finder itself cannot look inside a namespace package whose parent
            # is not imported (it asks the parent module for its path), so the path
            # entries are walked here, the way it walks them.
            spec = _find_on_path(name, sys.path if search is None else search)
        else:
            find_spec = getattr(finder, "find_spec", None)
            spec = None if find_spec is None else find_spec(name, search)
        if spec is not None:
            return spec
    return None


def _find_on_path(name: str, entries: list[str]) -> ModuleSpec | None:
    """``name`` found on ``entries`` as ``PathFinder`` finds it, importing nothing: the
    first module or regular package wins; failing that, the directories of that name on
    every entry together make a namespace package."""
    portions: list[str] = []
    for entry in entries:
        if not isinstance(entry, str):
            continue
        importer = pkgutil.get_importer(entry or os.getcwd())
        find_spec = getattr(importer, "find_spec", None)
        spec = None if find_spec is None else find_spec(name)
        if spec is None:
            continue
        if spec.loader is not None:
            return spec
        portions += list(spec.submodule_search_locations or [])
    if not portions:
        return None
    namespace = ModuleSpec(name, None, is_package=True)
    namespace.submodule_search_locations = portions
    return namespace


def _places(chain: list[ModuleSpec]) -> list[Path]:
    """The files and directories the module would be loaded from: each module's file,
    each package's directory (every one a namespace package spans), and the Python path
    entries holding the top-level module or package."""
    places: list[Path] = []
    for spec in chain:
        if spec.has_location and spec.origin:
            origin = Path(spec.origin).absolute()
            places += [origin, origin.parent]
        places += [Path(p).absolute() for p in spec.submodule_search_locations or []]
    top = chain[0] if chain else None
    if top is not None and top.submodule_search_locations:  # a package: its dirs' parents
        places += [Path(p).absolute().parent for p in top.submodule_search_locations]
    elif top is not None and top.has_location and top.origin:
        places.append(Path(top.origin).absolute().parent)
    unique: dict[Path, None] = dict.fromkeys(places)
    return list(unique)


def _world_writable(path: Path) -> bool:
    try:
        return bool(os.stat(path).st_mode & stat.S_IWOTH)
    except OSError:
        return False  # not a plain file (a zip member): the archive's checks apply
