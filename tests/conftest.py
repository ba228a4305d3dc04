"""Session-wide fixtures (tiny ASG and CTC Wav2Letter bundles exported through the real export step),
the test tiers, and `--without-torch`.

Tiers (markers registered in pyproject.toml; docs/testing.md says what each holds):
- `unit`: in-process and quick: no server subprocess, no model training, no browser, no container tools.
- `integration`: a real server subprocess on 127.0.0.1, or a tiny model trained for a few steps.
- `slow`: load, soak and fuzz runs, exports of whole models, the benchmark suite, the shipped bundles.
- `browser`: a headless Chromium through Selenium.
- `container`: the Dockerfile, compose file, Kubernetes manifests, entrypoint and image.

Every test gets exactly one tier: an explicit `@pytest.mark.<tier>` wins, then `TIER_BY_PATH`
(the longest matching prefix of the path under tests/), then `TIER_BY_FIXTURE`, else `unit`.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app

ROOT = Path(__file__).resolve().parents[1]
TIERS = ("unit", "integration", "slow", "browser", "container")

TIER_BY_PATH = {
    "deploy/": "container",
    "api/test_browser.py": "browser",
    "reliability/": "integration",
    "reliability/test_load.py": "slow",
    "reliability/test_soak.py": "slow",
    "reliability/test_fuzz_api.py": "slow",
    "reliability/test_fuzz_audio.py": "slow",
    "reliability/test_regressions.py": "unit",  # replays saved inputs in process
    "reliability/test_schema.py": "slow",
    "bench/": "slow",
    "export/": "slow",
    "export/test_bundle_files.py": "unit",
    "test_default_bundles.py": "slow",
    "models/test_txl_train.py": "integration",
    "models/test_punctuation_train.py": "integration",
    "models/test_wav2vec2.py": "slow",
    "models/test_kokoro.py": "integration",
    "models/test_lm_corpus.py": "integration",
    "models/test_corpus.py": "integration",
    "asr/test_memory.py": "integration",
    "test_cli.py": "integration",
}
TIER_BY_FIXTURE = {
    "live_server": "integration",  # a server subprocess
    "punctuation_bundle": "integration",  # a tagger trained for a few steps
}

# What `--without-torch` hides: the `export` and `train` extras, as in an install of the server alone.
TORCH_PACKAGES = frozenset({"torch", "torchaudio", "transformers", "onnx", "onnxscript", "onnxconverter_common"})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--without-torch", action="store_true",
                     help="make torch, torchaudio, transformers and onnx unimportable, as in a server-only install; "
                          "tests that need them skip (try: pytest -m unit --without-torch)")  # fmt: skip


class _BlockTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        if fullname.partition(".")[0] in TORCH_PACKAGES:
            raise ModuleNotFoundError(f"No module named {fullname!r} (hidden by --without-torch)", name=fullname)
        return None


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--without-torch"):
        loaded = sorted(m for m in sys.modules if m.partition(".")[0] in TORCH_PACKAGES)
        if loaded:
            raise pytest.UsageError(f"--without-torch: already imported before the tests start: {loaded}")
        sys.meta_path.insert(0, _BlockTorch())


def torch_available() -> bool:
    try:
        return importlib.util.find_spec("torch") is not None
    except ImportError:  # hidden by --without-torch
        return False


def tier_of(item: pytest.Item) -> str:
    explicit = [m.name for m in item.iter_markers() if m.name in TIERS]
    if explicit:
        return explicit[0]
    relative = Path(str(item.path)).resolve().relative_to(ROOT / "tests").as_posix()
    prefixes = [p for p in TIER_BY_PATH if relative == p or (p.endswith("/") and relative.startswith(p))]
    if prefixes:
        return TIER_BY_PATH[max(prefixes, key=len)]
    fixtures = getattr(item, "fixturenames", ())
    return next((tier for fixture, tier in TIER_BY_FIXTURE.items() if fixture in fixtures), "unit")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier = tier_of(item)
        if not any(m.name == tier for m in item.iter_markers()):
            item.add_marker(getattr(pytest.mark, tier))


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    """Under `--without-torch`, a test module that imports torch is skipped with the reason, not an error."""
    report = yield
    if report.failed and collector.config.getoption("--without-torch") and "hidden by --without-torch" in str(report.longrepr):
        report.outcome = "skipped"
        report.longrepr = (str(collector.path), 0, "Skipped: imports a package of the export/train extras (--without-torch)")
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under `--without-torch`, a test that imports a hidden package as it runs is skipped with the reason."""
    report = yield
    error = call.excinfo.value if call.excinfo is not None else None
    if isinstance(error, ModuleNotFoundError) and "hidden by --without-torch" in str(error):
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: needs {error.name} (the export/train extras; --without-torch)")
    return report


# --- the tiny bundles --------------------------------------------------------------------------------
# Exported once from torch models and kept in pytest's cache (.pytest_cache/d/tiny-bundles) while
# the source files the export imported are unchanged; each session works on its own copy. So the
# unit tier does not pay for the export on every run, and a server-only install (no torch) can run
# the tests that need bundles once a torch install has built them. `pytest --cache-clear` rebuilds.
# The export runs in a subprocess, so that its own imports say which files the bundles depend on.
_BUILD = """import json, sys
from pathlib import Path
from tests.helpers import build_tiny_bundles
build_tiny_bundles(Path(sys.argv[1]), Path(sys.argv[2]))
print(json.dumps(sorted({m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)})))
"""


def _hashes(files: list[str]) -> dict[str, str]:
    return {f: hashlib.sha256((ROOT / f).read_bytes()).hexdigest() for f in files if (ROOT / f).is_file()}


def _build_bundles(root: Path, work: Path) -> dict[str, str]:
    """Export the tiny bundles into `root`; the repository files the export imported, with their sha256."""
    done = subprocess.run([sys.executable, "-c", _BUILD, str(root), str(work)], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"building the tiny bundles failed:\n{done.stderr[-3000:]}")
    files = [Path(f).resolve() for f in json.loads(done.stdout.strip().splitlines()[-1])]
    ours = [f.relative_to(ROOT).as_posix() for f in files if f.is_relative_to(ROOT) and f.relative_to(ROOT).parts[0] in ("app", "export", "models", "tests")]
    return _hashes(ours)


def _cached_bundles(config: pytest.Config) -> Path | None:
    cache = getattr(config, "cache", None)  # None under -p no:cacheprovider
    if cache is None:
        return None
    entry = cache.mkdir("tiny-bundles") / "current"
    try:
        sources = json.loads((entry / "sources.json").read_text())["files"]
    except (OSError, ValueError, KeyError):
        return None
    return entry / "models" if sources and _hashes(list(sources)) == sources else None


def _store_bundles(config: pytest.Config, built: Path, sources: dict[str, str]) -> None:
    cache = getattr(config, "cache", None)
    if cache is None:
        return
    base = cache.mkdir("tiny-bundles")
    stage = base / f"stage-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    shutil.copytree(built, stage / "models")
    (stage / "sources.json").write_text(json.dumps({"files": sources}, indent=1))
    shutil.rmtree(base / "current", ignore_errors=True)
    try:
        stage.rename(base / "current")
    except OSError:  # another session stored its copy meanwhile
        shutil.rmtree(stage, ignore_errors=True)


@pytest.fixture(scope="session")
def models_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    cached = _cached_bundles(request.config)
    if cached is not None:
        try:
            shutil.copytree(cached, root, dirs_exist_ok=True)
            return root
        except OSError:  # replaced by another session while copying: build our own
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
    if not torch_available():
        pytest.skip("the tiny test bundles are exported from torch models: run the tests once with torch installed "
                    "(the export extra) to build them into pytest's cache")  # fmt: skip
    sources = _build_bundles(root, tmp_path_factory.mktemp("checkpoints"))
    _store_bundles(request.config, root, sources)
    return root


@pytest.fixture(scope="session")
def punctuation_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny punctuation bundle trained for a few steps through the real recipe and exporter."""
    pytest.importorskip("torch")
    from tests.punctuation_helpers import build_tiny_punctuation

    return build_tiny_punctuation(tmp_path_factory.mktemp("punctuation"))


@pytest.fixture(scope="session")
def settings(models_dir: Path) -> Settings:
    return Settings(models_dir=models_dir, default_model="tiny-asg", threads=1, workers=2)


@pytest.fixture()
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c
