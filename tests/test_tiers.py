"""The test tiers of tests/conftest.py: registered in pyproject.toml, assigned by paths that exist."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.conftest import TIER_BY_FIXTURE, TIER_BY_PATH, TIERS

ROOT = Path(__file__).resolve().parents[1]


def test_the_tiers_are_the_registered_markers() -> None:
    markers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    assert [line.partition(":")[0] for line in markers] == list(TIERS)


def test_every_tier_rule_names_a_tier_and_a_path_that_exists() -> None:
    for prefix, tier in TIER_BY_PATH.items():
        assert tier in TIERS, prefix
        path = ROOT / "tests" / prefix
        assert path.is_dir() if prefix.endswith("/") else path.is_file(), f"TIER_BY_PATH names {prefix}, which is not there"
    assert set(TIER_BY_FIXTURE.values()) <= set(TIERS)
