"""Renew requirements.lock, the exact set of packages that `make demo` and `make test` install.

    make lock                                      # = python3.11 infra/lock.py
    python3.11 infra/lock.py --upgrade             # every package to its newest allowed version
    python3.11 infra/lock.py --upgrade-package X   # only X (and what it needs)

Without --upgrade the pins already in the lock are kept wherever pyproject.toml still allows them, so
adding one dependency moves nothing else. The script uses only the standard library: it installs pinned
pip-tools into a throwaway venv (never into the project's .venv) and runs pip-compile there. It must run
under Python 3.11, the interpreter the lock is for, because pip-compile resolves environment markers
against the interpreter that runs it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import tomllib
import venv
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOCK_NAME = "requirements.lock"
PYPROJECT_NAME = "pyproject.toml"
# The resolver is pip's own, so its version is pinned with pip-tools' for the same pyproject to give the same lock.
TOOLS = ("pip==26.3", "pip-tools==7.7.0")
# --build-deps-for=editable adds setuptools and wheel (build-system.requires) so that the editable install
# of the project can run with --no-build-isolation and fetch nothing unhashed; --allow-unsafe keeps
# setuptools in the lock; --strip-extras leaves plain pins that also serve as a constraints file;
# --no-emit-index-url keeps this machine's mirror paths out (pip's own config supplies them) while the
# find-links directory holding the local torch CPU wheel stays in the lock.
PIP_COMPILE_FLAGS = (
    "--extra=dev",
    "--build-deps-for=editable",
    "--generate-hashes",
    "--allow-unsafe",
    "--strip-extras",
    "--no-emit-index-url",
    "--no-header",
    "--quiet",
)
DIGEST_LABEL = "pyproject-sha256:"


def pyproject_digest(pyproject: Path = ROOT / PYPROJECT_NAME) -> str:
    """sha256 of what the lock is compiled from: requires-python, the dependencies, every extra and the
    build requirements. Comments and unrelated tables of pyproject.toml do not change it."""
    data: dict[str, Any] = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    project = data.get("project", {})
    inputs = {
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
        "build-system.requires": data.get("build-system", {}).get("requires", []),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def pip_compile_command(extra: list[str]) -> list[str]:
    return ["pip-compile", *PIP_COMPILE_FLAGS, *extra, f"--output-file={LOCK_NAME}", PYPROJECT_NAME]


def header(digest: str) -> str:
    command = " ".join(pip_compile_command([]))
    return f"""\
# The exact version of every package `make demo` and `make test` install, with the sha256 of each file pip
# may take for it: pip install --require-hashes -r {LOCK_NAME}, then pip install --no-build-isolation
# --no-deps -e . (setuptools and wheel are here for that build). For CPython 3.11 on Linux x86_64.
# Generated from {PYPROJECT_NAME} ([project] dependencies, the dev extra, build-system.requires); do not
# edit by hand. Renew with `make lock` (python3.11 infra/lock.py [--upgrade | --upgrade-package NAME]),
# which runs with {" and ".join(TOOLS)} in a throwaway venv:
#     {command}
# torch is the local CPU build (2.13.0+cpu) from the find-links directory below, not on the public index;
# its one hash is that wheel's, so a hash-checked install accepts exactly that file (the public 2.13.0 is
# the CUDA build and would bring the nvidia packages).
# {DIGEST_LABEL} {digest}
#   (of the dependency lists in {PYPROJECT_NAME}; tests/test_lock.py fails when they change and this
#   lock was not renewed)
"""


def strip_header(text: str) -> str:
    """The lock without its leading comment block (pip-compile keeps it when it rewrites the file)."""
    lines = text.splitlines(keepends=True)
    start = 0
    while start < len(lines) and lines[start].startswith("#"):
        start += 1
    return "".join(lines[start:])


def renew(root: Path, extra: list[str]) -> Path:
    if sys.version_info[:2] != (3, 11):
        raise SystemExit(
            f"infra/lock.py: run it with Python 3.11 (the lock's interpreter), not {sys.version.split()[0]}"
        )
    lock = root / LOCK_NAME
    with tempfile.TemporaryDirectory(prefix="depthcharge-lock-") as tmp:
        tools = Path(tmp) / "venv"
        venv.create(tools, with_pip=True)
        bin_dir = tools / "bin"
        subprocess.run([bin_dir / "python", "-m", "pip", "install", "--quiet", *TOOLS], check=True)
        command = pip_compile_command(extra)
        subprocess.run([bin_dir / command[0], *command[1:]], cwd=root, check=True)
    body = strip_header(lock.read_text(encoding="utf-8"))
    lock.write_text(header(pyproject_digest(root / PYPROJECT_NAME)) + body, encoding="utf-8")
    return lock


def main(argv: list[str]) -> int:
    allowed = {"--upgrade", "--upgrade-package"}
    for arg in argv:
        if arg.startswith("-") and arg.split("=")[0] not in allowed:
            raise SystemExit(
                f"infra/lock.py: unknown option {arg!r}; use --upgrade or --upgrade-package NAME"
            )
    lock = renew(ROOT, argv)
    print(f"wrote {lock}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
