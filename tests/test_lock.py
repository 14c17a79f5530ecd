"""requirements.lock agrees with pyproject.toml: compiled from the current dependency lists, every dependency
locked at a version its specifier allows, every package hash-pinned, torch the local 2.13.0 CPU build, and
nothing locked that pyproject.toml does not reach. Offline: it reads the two files (and the local torch
wheel when it is on this machine), never an index."""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from infra.lock import DIGEST_LABEL, LOCK_NAME, PIP_COMPILE_FLAGS, pyproject_digest

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / LOCK_NAME
PYPROJECT = ROOT / "pyproject.toml"
# How pip-compile annotates what the project itself asks for: `depthcharge (pyproject.toml)` for the
# dependencies and extras, `depthcharge (pyproject.toml::build-system.requires)` for the build.
ROOT_VIA = re.compile(r"^depthcharge \(pyproject\.toml(::[\w.-]+)*\)$")
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)")
HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})\b")


@dataclass
class Locked:
    name: str
    version: Version
    requirement: Requirement
    hashes: set[str] = field(default_factory=set)
    via: list[str] = field(default_factory=list)


@dataclass
class Lock:
    header: list[str]
    options: list[str]
    packages: dict[str, Locked]


@cache
def parse_lock() -> Lock:
    """The lock as pip-compile writes it: option lines, then one entry per package (the pin, its
    continuation lines of hashes) followed by its indented `# via` annotation."""
    lines = LOCK.read_text(encoding="utf-8").splitlines()
    header: list[str] = []
    while lines and lines[0].startswith("#"):
        header.append(lines.pop(0))
    options: list[str] = []
    packages: dict[str, Locked] = {}
    current: Locked | None = None
    in_entry = False
    for number, line in enumerate(lines, start=len(header) + 1):
        stripped = line.strip()
        if not stripped:
            continue
        if line.startswith("-"):
            options.append(stripped)
        elif line[0].isalnum():
            match = PIN.match(line)
            assert match, f"{LOCK_NAME}:{number}: {line!r} is not pinned with =="
            requirement = Requirement(line.split("\\")[0].strip())
            name = canonicalize_name(match["name"])
            assert name not in packages, f"{LOCK_NAME}:{number}: {name} is locked twice"
            current = Locked(name, Version(match["version"]), requirement)
            packages[name] = current
            current.hashes.update(HASH.findall(line))
            in_entry = line.rstrip().endswith("\\")
        elif in_entry and current is not None and stripped.startswith("--hash"):
            current.hashes.update(HASH.findall(stripped))
            in_entry = stripped.endswith("\\")
        elif stripped.startswith("#") and line[0].isspace() and current is not None:
            note = stripped.lstrip("#").strip()
            if note.startswith("via"):
                note = note.removeprefix("via").strip()
            if note:
                current.via.append(note)
        elif stripped.startswith("#"):
            current = None  # a section comment, e.g. pip-compile's "unsafe in a requirements file"
        else:
            raise AssertionError(f"{LOCK_NAME}:{number}: unexpected line {line!r}")
    return Lock(header, options, packages)


@cache
def pyproject() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


def pyproject_requirements() -> list[Requirement]:
    """What the lock is compiled from: [project] dependencies, the dev extra, build-system.requires."""
    data = pyproject()
    texts = [
        *data["project"]["dependencies"],
        *data["project"]["optional-dependencies"]["dev"],
        *data["build-system"]["requires"],
    ]
    return [Requirement(text) for text in texts]


def test_the_lock_was_compiled_from_the_current_pyproject() -> None:
    header = "\n".join(parse_lock().header)
    recorded = re.search(re.escape(DIGEST_LABEL) + r"\s*([0-9a-f]{64})", header)
    assert recorded, f"{LOCK_NAME} has no '{DIGEST_LABEL}' line in its header: renew it with `make lock`"
    assert recorded[1] == pyproject_digest(PYPROJECT), (
        f"pyproject.toml's dependencies changed since {LOCK_NAME} was compiled: renew it with `make lock`"
    )
    # The header tells how to renew the lock, with the exact pip-compile command.
    assert "make lock" in header
    assert "infra/lock.py" in header
    assert " ".join(["pip-compile", *PIP_COMPILE_FLAGS]) in header


def test_every_pyproject_requirement_is_locked_at_a_version_it_allows() -> None:
    packages = parse_lock().packages
    for requirement in pyproject_requirements():
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": "dev"}):
            continue
        name = canonicalize_name(requirement.name)
        assert name in packages, f"{requirement} (pyproject.toml) is not in {LOCK_NAME}"
        locked = packages[name].version
        assert requirement.specifier.contains(locked, prereleases=True), (
            f"{LOCK_NAME} locks {name}=={locked}, which pyproject.toml's {requirement} does not allow"
        )


def test_torch_is_the_local_cpu_build_of_2_13_0() -> None:
    lock = parse_lock()
    torch = lock.packages["torch"]
    assert torch.version.public == "2.13.0", f"{LOCK_NAME} locks torch=={torch.version}, not 2.13.0"
    assert torch.version.local == "cpu", f"{LOCK_NAME} locks torch=={torch.version}, not the CPU build"
    # The CPU build is not on the public index: the lock names the directory it comes from, and where that
    # directory is on this machine the one hash recorded is that wheel's.
    directories = [
        Path(option.split(maxsplit=1)[1]) for option in lock.options if option.startswith("--find-links")
    ]
    assert directories, f"{LOCK_NAME} names no --find-links directory for the local torch wheel"
    wheels = [wheel for directory in directories for wheel in directory.glob(f"torch-{torch.version}-*.whl")]
    if not wheels:
        pytest.skip(f"no torch-{torch.version} wheel in {', '.join(map(str, directories))} on this machine")
    for wheel in wheels:
        with wheel.open("rb") as file:
            digest = hashlib.file_digest(file, "sha256").hexdigest()
        assert digest in torch.hashes, f"{wheel}'s sha256 {digest} is not the hash {LOCK_NAME} records"


def test_every_locked_package_is_pinned_with_hashes() -> None:
    packages = parse_lock().packages
    assert packages, f"{LOCK_NAME} locks nothing"
    unhashed = sorted(name for name, locked in packages.items() if not locked.hashes)
    assert not unhashed, f"{LOCK_NAME} has no --hash for {unhashed}: pip --require-hashes would refuse it"
    with_extras = sorted(str(locked.requirement) for locked in packages.values() if locked.requirement.extras)
    assert not with_extras, f"{LOCK_NAME} keeps extras on {with_extras}; it is compiled with --strip-extras"


def test_nothing_is_locked_that_pyproject_does_not_reach() -> None:
    """Each package's `# via` names what requires it; following them from the project's own requirements
    must reach every locked package, so the lock carries no leftover of a dropped dependency."""
    packages = parse_lock().packages
    unannotated = sorted(name for name, locked in packages.items() if not locked.via)
    assert not unannotated, f"{LOCK_NAME} does not say what requires {unannotated}"
    direct = {canonicalize_name(requirement.name) for requirement in pyproject_requirements()}
    reached = {name for name, locked in packages.items() if any(ROOT_VIA.match(via) for via in locked.via)}
    assert reached <= direct, f"{LOCK_NAME} credits pyproject.toml with {sorted(reached - direct)}"
    changed = True
    while changed:
        changed = False
        for name, locked in packages.items():
            if name not in reached and any(canonicalize_name(via) in reached for via in locked.via):
                reached.add(name)
                changed = True
    unreached = sorted(set(packages) - reached)
    assert not unreached, f"{LOCK_NAME} locks {unreached}, which nothing in pyproject.toml requires"
