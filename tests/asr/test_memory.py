"""Resident memory stays flat however long the inputs: the mechanism (`app.asr.runtime.session_options`,
`app.asr.allocator`), on a graph whose activations are large, in a fresh process.

The soak that measured it on the real bundles (thousands of mixed requests) is in docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.asr import allocator
from app.asr.runtime import session_options

ROOT = Path(__file__).resolve().parents[2]

# Runs a graph whose activations are 10-120 MB per call (an acoustic model on 1-15 s of audio) at
# 40 different lengths, two calls at a time, through `AcousticModel.run` on a session made by
# `create_session`, and reports the resident memory kept afterwards; and the same with ONNX
# Runtime's defaults, whose arena keeps the largest concurrent runs' memory for good.
PROBE = r"""
import json, random, sys, tempfile
from concurrent.futures import ThreadPoolExecutor
import numpy as np, onnx, onnxruntime as ort
from onnx import TensorProto, helper
from app.asr import allocator
from app.asr.runtime import SHRINK_FROM_SAMPLES, AcousticModel, FrameGeometry, create_session

WIDTH = 128
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "n"])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "n", 1])
nodes = [helper.make_node("Unsqueeze", ["x", "axis2"], ["x3"]), helper.make_node("Mul", ["x3", "w"], ["wide"]),
         helper.make_node("Relu", ["wide"], ["act"]), helper.make_node("Sin", ["act"], ["act2"]),
         helper.make_node("ReduceSum", ["act2", "axis2"], ["y"], keepdims=1)]
inits = [helper.make_tensor("axis2", TensorProto.INT64, [1], [2]),
         helper.make_tensor("w", TensorProto.FLOAT, [1, 1, WIDTH], np.linspace(-1, 1, WIDTH, dtype=np.float32).tolist())]
model = helper.make_model(helper.make_graph(nodes, "wide", [x], [y], inits), opset_imports=[helper.make_opsetid("", 17)])
path = tempfile.mktemp(suffix=".onnx")
onnx.save(model, path)

if sys.argv[1] == "ours":
    session = create_session(path, threads=1, providers=["CPUExecutionProvider"])
    run = AcousticModel(session, FrameGeometry(1, 1, 0, 0, True, 1)).run
else:  # ONNX Runtime's defaults
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
    run = lambda batch: session.run(None, {"x": batch})[0]
run(np.ones((1, 1000), np.float32))
before = allocator.resident_mb()
lengths = [random.Random(i).randrange(SHRINK_FROM_SAMPLES // 4, 3 * SHRINK_FROM_SAMPLES) for i in range(40)]
kept = []
with ThreadPoolExecutor(2) as pool:  # two at a time, as the inference pool runs them
    for half in (lengths[:20], lengths[20:]):
        list(pool.map(lambda n: run(np.full((1, n), 0.5, np.float32)), half))
        kept.append(allocator.resident_mb() - before)
print(json.dumps({"kept_mb": kept, "applied": allocator.configure() if sys.argv[1] == "ours" else {}}))
"""


def probe(which: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", PROBE, which], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_session_options_plan_no_memory_per_shape() -> None:
    options = session_options(threads=2)
    assert options.enable_mem_pattern is False and options.intra_op_num_threads == 2


def test_long_inputs_shrink_the_arena_short_ones_do_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnx
    from onnx import TensorProto, helper

    from app.asr.runtime import SHRINK_FROM_SAMPLES, AcousticModel, FrameGeometry, create_session

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "n"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "n", 1])
    graph = helper.make_graph([helper.make_node("Unsqueeze", ["x", "axis"], ["y"])], "g", [x], [y], [helper.make_tensor("axis", TensorProto.INT64, [1], [2])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "g.onnx")
    session = create_session(tmp_path / "g.onnx", threads=1, providers=["CPUExecutionProvider"])
    seen: list[object] = []

    class Recorder:
        def run(self, names: list[str], feeds: dict[str, np.ndarray], run_options: object = None) -> list[np.ndarray]:
            seen.append(run_options)
            return session.run(names, feeds, run_options)  # type: ignore[arg-type]

    trims: list[int] = []
    monkeypatch.setattr(allocator, "trim", lambda: trims.append(len(seen)))
    model = AcousticModel(session, FrameGeometry(1, 1, 0, 0, True, 1))
    model.session = Recorder()  # type: ignore[assignment]
    model.run(np.zeros((1, SHRINK_FROM_SAMPLES - 1), np.float32))
    model.run(np.zeros((1, SHRINK_FROM_SAMPLES), np.float32))
    assert seen[0] is None and trims == [2]  # the heap is trimmed after the long run only
    assert seen[1] is not None and seen[1].get_run_config_entry("memory.enable_memory_arena_shrinkage") == "cpu:0"  # type: ignore[attr-defined]


def test_allocator_setting_applies_once_and_defers_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    if not allocator.configure():
        pytest.skip("not glibc, or MALLOC_ARENA_MAX set: the allocator setting does not apply")
    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert allocator.configure() == {}
    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert allocator.configure() == {"MALLOC_ARENA_MAX": allocator.ARENA_MAX} == allocator.configure()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="resident memory is read from /proc")
def test_large_activations_are_returned_after_the_runs() -> None:
    """With ONNX Runtime's defaults the memory of the largest concurrent runs stays resident; with
    the server's settings most goes back when the runs end, and what stays does not grow."""
    ours = probe("ours")["kept_mb"]
    defaults = probe("defaults")["kept_mb"]
    assert defaults[-1] > 300, f"the probe no longer shows the arena's growth: {defaults}"  # type: ignore[index, operator]
    assert ours[-1] < defaults[-1] / 4, (ours, defaults)  # type: ignore[index, operator]
    assert ours[-1] - ours[0] < 20, f"memory still grows after the first runs: {ours}"  # type: ignore[index, operator]
