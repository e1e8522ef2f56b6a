"""The wheel carries every package and the data the code looks for when not run from a checkout."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_subpackage_is_listed_for_the_wheel() -> None:
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    listed = set(conf["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "monitor").rglob("__init__.py")}
    assert on_disk <= listed, f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"
    data_dirs = {
        "monitor._rules" + "".join("." + x for x in d.relative_to(ROOT / "rules").parts)
        for d in [ROOT / "rules", *(p for p in (ROOT / "rules").rglob("*") if p.is_dir())]
    }
    assert data_dirs <= listed, f"add to [tool.setuptools] packages: {sorted(data_dirs - listed)}"
    assert conf["package-dir"] == {"monitor._rules": "rules", "monitor._migrations": "migrations",
                                   "monitor._reports": "reports"}  # fmt: skip
