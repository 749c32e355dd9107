"""Code fingerprints: a hash of what a stage computes with, blind to comments and formatting.

A stage's fingerprint covers its own module and every pl_dsl module it imports, transitively
(imports inside functions included), except the engine and the language (`pl_dsl.engine`,
`pl_dsl.spec`): they decide *which* units run and with which parameters (those are in the
identity already), not what a unit computes. Each module counts by its abstract syntax tree
with docstrings removed, so editing a comment, a docstring or the layout changes nothing.

A module's digest depends only on its name, its source, this file and the Python version, so it
is kept on disk under their hash (CACHE) and parsed once per user, not in every process that
fingerprints the stages (the Snakemake process, each job, each command).
"""

from __future__ import annotations

import ast
import hashlib
import sys
from functools import cache
from pathlib import Path

from pl_dsl.engine.store import read_json, write_json

PACKAGE = "pl_dsl"
PACKAGE_DIR = Path(__file__).resolve().parent.parent
NOT_FINGERPRINTED = ("pl_dsl.engine", "pl_dsl.spec")


def _user_cache() -> Path | None:
    """~/.cache/pl-dsl/code-digests, or None where the user has no home directory."""
    try:
        return Path.home() / ".cache" / "pl-dsl" / "code-digests"
    except RuntimeError:
        return None


# Module digests worked out before, one file each, named by the hash of what determines them.
CACHE = _user_cache()


def _source_file(module: str, root: Path) -> Path | None:
    """The file of a module (a package's __init__.py), or None if it is not a module.

    pl_dsl's own modules are found under `root` without importing anything; a module outside
    pl_dsl (a user's own stage) is found the way Python would import it.
    """
    if module.split(".")[0] != PACKAGE:
        import importlib.util

        spec = importlib.util.find_spec(module)
        return Path(spec.origin) if spec is not None and spec.origin and spec.origin.endswith(".py") else None
    parts = module.split(".")[1:]
    for candidate in (root.joinpath(*parts).with_suffix(".py"), root.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    return None


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]


def _imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """pl_dsl modules named by the imports of a module (absolute or relative)."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] == PACKAGE:
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


@cache
def _recipe() -> bytes:
    """What else a digest depends on: this file (how a tree is normalised) and the Python version (its trees)."""
    return hashlib.sha256(Path(__file__).read_bytes() + sys.version.encode()).digest()


@cache
def _module_digest(module: str, root: Path) -> tuple[str, frozenset[str]] | None:
    """(hash of the normalised syntax tree, pl_dsl modules it imports), or None if no such module."""
    path = _source_file(module, root)
    if path is None:
        return None
    source = path.read_bytes()
    stored = None if CACHE is None else \
        CACHE / f"{hashlib.sha256(_recipe() + module.encode() + b'|' + source).hexdigest()}.json"
    try:
        known = read_json(stored) if stored is not None else None
        if isinstance(known, dict) and len(str(known.get("digest"))) == 64 and isinstance(known.get("imports"), list):
            return str(known["digest"]), frozenset(map(str, known["imports"]))
    except (OSError, ValueError):
        pass  # not worked out before (or unreadable): parse it
    tree = ast.parse(source)
    imports = _imported(tree, module, path.name == "__init__.py")
    _strip_docstrings(tree)
    digest = hashlib.sha256(ast.dump(tree, annotate_fields=False, include_attributes=False).encode()).hexdigest()
    if stored is not None:
        try:
            write_json(stored, {"module": module, "digest": digest, "imports": sorted(imports)})
        except OSError:
            pass  # a read-only home: every process parses, as without the cache
    return digest, frozenset(imports)


def code_fingerprint(module: str, root: Path = PACKAGE_DIR) -> str:
    """Hash over `module` and the pl_dsl modules it depends on (see the module docstring)."""
    seen: dict[str, str] = {}
    pending = [module]
    while pending:
        name = pending.pop()
        if name in seen or (name != module and name.startswith(NOT_FINGERPRINTED)):
            continue
        found = _module_digest(name, root)
        if found is None:
            continue  # `from pkg import function`: the name is not a module
        seen[name], imports = found
        pending.extend(sorted(imports))
    blob = "\n".join(f"{name}:{digest}" for name, digest in sorted(seen.items()))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
