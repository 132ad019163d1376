"""The two versions of the code `zhisuan ab` times: where each comes from, how it is built and started.

A side is one of:
- a git revision (`main`, `HEAD~1`, a SHA; `git:REV` to be explicit) of the repository: checked out
  as a detached git worktree under the work folder (kept, and reused while the revision is the same);
- a source tree (`tree:PATH`, or any directory): a checkout of this repository, as it is on disk;
- a Python environment (`python:PATH`, or any executable file): that interpreter, with the zhisuan
  installed in it.

A source tree is imported through a namespace link (WORK/links/ID/zhisuan/{bench,kernels} -> the
tree's folders, first on PYTHONPATH), as the GPU session's command does; its compiled extensions
are built in place (`setup.py build_ext --inplace`), unless a build of identical sources exists:
the build key hashes csrc/, setup.py, the interpreter's extension suffix and the build switches,
and a tree whose extensions are newer than its sources lends them (copied), so a change that
touches only Python code compiles nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

BUILD_SWITCHES = ("ZHISUAN_SKIP_CUDA", "ZHISUAN_CUDA_ARCHS", "ZHISUAN_CPU_NATIVE", "ZHISUAN_DEBUG")
EXTENSIONS = ("_C", "_cuda")
BUILD_TIMEOUT_S = 1800


@dataclass
class Side:
    label: str  # "A" or "B"
    spec: str  # as given on the command line
    description: str  # what it is, in words: "main (3f2a9c1)", "tree /src/zhisuan", "python /venv/bin/python"
    python: str
    env: dict = field(default_factory=dict)
    tree: Path | None = None  # the source tree it imports (None: an installed environment)
    notes: list[str] = field(default_factory=list)  # what was built or reused


class SideError(ValueError):
    """A side that cannot be prepared: says which and why, in one line."""


def git(repo: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if check and proc.returncode:
        raise SideError(f"git {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip()


def resolve(label: str, spec: str, *, repo: Path | None, workdir: Path, python: str | None,
            build: bool) -> Side:  # fmt: skip
    """A side ready to start: its interpreter, environment and (for source) a built tree."""
    kind, _, value = (
        spec.partition(":") if spec.split(":", 1)[0] in ("git", "tree", "python") else ("", "", spec)
    )
    path = Path(value).expanduser()
    if kind == "python" or (not kind and path.is_file() and os.access(path, os.X_OK)):
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise SideError(f"side {label}: {value} is not an executable Python interpreter")
        return Side(label, spec, f"python {path}", str(path), dict(os.environ))
    if kind == "tree" or (not kind and path.is_dir()):
        if not (path / "bench").is_dir() or not (path / "kernels").is_dir():
            raise SideError(f"side {label}: {path} is not a zhisuan source tree (no bench/ and kernels/)")
        return _tree_side(label, spec, path.resolve(), f"tree {path.resolve()}", workdir, python, build)
    if repo is None:
        raise SideError(
            f"side {label}: {spec!r} is no file or folder, and there is no git repository to look it up in"
        )
    sha = git(repo, "rev-parse", "--verify", "--quiet", f"{value}^{{commit}}", check=False)
    if not sha:
        raise SideError(f"side {label}: {value!r} is not a revision of {repo}")
    tree = checkout(repo, sha, workdir)
    return _tree_side(label, spec, tree, f"{value} ({sha[:10]})", workdir, python, build)


def checkout(repo: Path, sha: str, workdir: Path) -> Path:
    """A detached git worktree of the revision under workdir/trees, reused while it is intact."""
    tree = workdir / "trees" / sha
    if tree.is_dir() and git(tree, "rev-parse", "HEAD", check=False) == sha:
        if not git(tree, "status", "--porcelain", "--untracked-files=no", check=False):
            return tree
        shutil.rmtree(tree)
    tree.parent.mkdir(parents=True, exist_ok=True)
    git(repo, "worktree", "prune")
    git(repo, "worktree", "add", "--detach", "--force", str(tree), sha)
    return tree


def _tree_side(label: str, spec: str, tree: Path, description: str, workdir: Path, python: str | None,
               build: bool) -> Side:  # fmt: skip
    python = python or sys.executable
    side = Side(label, spec, description, python, tree=tree)
    if build:
        side.notes.append(ensure_built(tree, python, workdir))
    elif not _built(tree):
        side.notes.append(
            "not built (--no-build): backends that need the compiled extensions are unavailable"
        )
    link = workdir / "links" / hashlib.sha256(str(tree).encode()).hexdigest()[:16] / "zhisuan"
    link.mkdir(parents=True, exist_ok=True)
    for name in ("bench", "kernels"):
        target = link / name
        if target.is_symlink() or target.exists():
            target.unlink()
        target.symlink_to(tree / name, target_is_directory=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(link.parent), *filter(None, [env.get("PYTHONPATH")])])
    side.env = env
    return side


def build_key(tree: Path, python: str) -> str:
    """What decides the compiled extensions: sources, setup.py, interpreter, build switches."""
    digest = hashlib.sha256()
    files = sorted(p for p in (tree / "csrc").rglob("*") if p.is_file()) + [tree / "setup.py"]
    for path in files:
        digest.update(str(path.relative_to(tree)).encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(_extension_suffix(python).encode())
    for name in BUILD_SWITCHES:
        digest.update(f"{name}={os.environ.get(name, '')}".encode())
    return digest.hexdigest()[:20]


def _extension_suffix(python: str) -> str:
    if Path(python).resolve() == Path(sys.executable).resolve():
        return sysconfig.get_config_var("EXT_SUFFIX") or ""
    proc = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))"],
                          capture_output=True, text=True)  # fmt: skip
    return proc.stdout.strip()


def _built(tree: Path) -> list[Path]:
    return [p for name in EXTENSIONS for p in (tree / "kernels").glob(f"{name}.*.so")]


def _fresh(tree: Path) -> bool:
    """The tree's extensions exist and are newer than every source they are built from."""
    built = _built(tree)
    if not any(p.name.startswith("_C.") for p in built):
        return False
    sources = [p for p in (tree / "csrc").rglob("*") if p.is_file()] + [tree / "setup.py"]
    newest_source = max(p.stat().st_mtime for p in sources)
    return min(p.stat().st_mtime for p in built) >= newest_source


def ensure_built(tree: Path, python: str, workdir: Path) -> str:
    """Compiled extensions in tree/kernels: kept if fresh, copied from a build of the same key, or built."""
    key = build_key(tree, python)
    cache = workdir / "builds" / key
    if _fresh(tree):
        _store(tree, cache)
        return f"extensions already built in {tree}"
    if cache.is_dir() and any(cache.iterdir()):
        for so in cache.iterdir():
            shutil.copy2(so, tree / "kernels" / so.name)
        return f"extensions reused from an identical build ({key})"
    home = _installed_tree()
    if home is not None and home != tree and _fresh(home) and build_key(home, python) == key:
        for so in _built(home):
            shutil.copy2(so, tree / "kernels" / so.name)
        _store(tree, cache)
        return f"extensions reused from {home} (identical sources)"
    proc = subprocess.run(
        [python, "setup.py", "build_ext", "--inplace"], cwd=tree, capture_output=True, text=True,
        timeout=BUILD_TIMEOUT_S,
    )  # fmt: skip
    if proc.returncode or not _fresh(tree):
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise SideError(
            f"building the extensions of {tree} failed (python setup.py build_ext --inplace):\n{tail}"
        )
    _store(tree, cache)
    return f"extensions built in {tree}"


def _store(tree: Path, cache: Path) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    for so in _built(tree):
        if not (cache / so.name).exists():
            shutil.copy2(so, cache / so.name)


def _installed_tree() -> Path | None:
    """The source tree this zhisuan runs from, when it is one (an editable install or a checkout)."""
    import zhisuan.bench

    root = Path(zhisuan.bench.__file__).resolve().parent.parent
    return root if (root / "csrc").is_dir() and (root / "setup.py").is_file() else None


def default_repo() -> Path | None:
    proc = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    return Path(proc.stdout.strip()) if proc.returncode == 0 else None
