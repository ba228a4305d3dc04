"""pyctcdecode side of `asr-bench`'s decoder comparison, run in its own virtualenv.

pyctcdecode pins numpy<2, so it cannot share the project's environment: `asr-bench` runs
this file with another interpreter (`--pyctcdecode-python`) and passes the very emissions
its own decoders read, saved as `.npz`. Imports nothing from the project.

    python bench_pyctcdecode.py JOB.json   ->   JSON on stdout

JOB: {"emissions": npz path, "labels": [...], "arpa": path or null, "unigrams": [...],
      "alpha": float, "beta": float, "beam_prune_logp", "token_min_logp": float (optional), "runs": [{"name", "beam", "lm"}, ...],
      "rounds": int}
"""

from __future__ import annotations

import json
import sys
import time


def main(job_path: str) -> None:
    import numpy as np
    from pyctcdecode import build_ctcdecoder

    job = json.loads(open(job_path, encoding="utf-8").read())
    data = np.load(job["emissions"])
    emissions = [data[f"u{i}"] for i in range(len(data.files))]
    decoders = {False: build_ctcdecoder(job["labels"])}
    lm_note = None
    if job.get("arpa"):
        try:
            import kenlm  # noqa: F401

            decoders[True] = build_ctcdecoder(job["labels"], kenlm_model_path=job["arpa"], unigrams=job["unigrams"], alpha=job["alpha"], beta=job["beta"])
        except ImportError as e:
            lm_note = f"kenlm is not installed: {e}"
    results = []
    for run in job["runs"]:
        if run["lm"] and True not in decoders:
            continue
        decoder = decoders[bool(run["lm"])]
        prune = {key: job[key] for key in ("beam_prune_logp", "token_min_logp") if key in job}
        decoder.decode(emissions[0], beam_width=run["beam"], **prune)  # warm-up: caches, LM state
        best, texts = float("inf"), []
        for _ in range(int(job.get("rounds", 1))):  # the best of the rounds, as for the project's decoders
            started = time.perf_counter()
            texts = [decoder.decode(e, beam_width=run["beam"], **prune) for e in emissions]
            best = min(best, time.perf_counter() - started)
        results.append({**run, "seconds": best, "texts": [" ".join(t.split()) for t in texts]})
    import pyctcdecode

    version = getattr(pyctcdecode, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version

        version = dist_version("pyctcdecode")
    json.dump({"version": version, "numpy": np.__version__, "lm_note": lm_note, "runs": results}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
