"""The README's layout section names every module of each folder it lists, and nothing
that is not there: a newcomer finds the tree as the README draws it."""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _layout() -> dict[str, set[str]]:
    """Folder → module names, from the block between the layout markers: a line that
    starts with a folder opens it, the indented lines after it name its modules."""
    readme = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"<!-- layout:start -->(.*?)<!-- layout:end -->", readme, re.S)
    assert block, "README.md has no layout section"
    folders: dict[str, set[str]] = {}
    current = None
    for line in block.group(1).splitlines():
        if line.startswith("```") or not line.strip():
            continue
        if not line.startswith(" "):
            current = line.split()[0]
            folders[current] = set()
        else:
            assert current, f"modules before any folder: {line!r}"
            folders[current].update(line.split())
    return folders


def _modules(folder: str) -> set[str]:
    return {p.stem for p in (REPO_ROOT / folder).glob("*.py") if p.name != "__init__.py"}


def test_the_readme_lists_each_folders_modules_as_they_are():
    layout = _layout()
    assert layout, "the layout section lists no folder"
    for folder, listed in layout.items():
        assert folder.endswith("/") and (REPO_ROOT / folder).is_dir(), folder
        assert listed == _modules(folder), (
            f"{folder}: README lists {sorted(listed - _modules(folder))} that are not there "
            f"and leaves out {sorted(_modules(folder) - listed)}"
        )


def test_every_python_package_of_the_product_is_in_the_layout():
    layout = _layout()
    packages = {
        f"{path.parent.relative_to(REPO_ROOT)}/"
        for root in ("services", "shared")
        for path in (REPO_ROOT / root).rglob("__init__.py")
    }
    assert packages <= set(layout), f"not in the README's layout: {sorted(packages - set(layout))}"
