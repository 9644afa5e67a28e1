"""Every ``package_data`` pattern in setup.cfg names files that exist (a stale pattern ships nothing, silently)."""

from __future__ import annotations

import configparser
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_package_data_pattern_matches_a_file():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    patterns = {package: [p.strip() for p in value.replace("\n", ",").split(",") if p.strip()]
                for package, value in cfg["options.package_data"].items()}
    assert patterns, "setup.cfg has an empty [options.package_data]"
    missing = [f"{package}: {pattern}" for package, globs in patterns.items() for pattern in globs
               if not list((ROOT / package.replace(".", "/")).glob(pattern))]
    assert not missing, f"package_data patterns that match no file: {missing}"
