"""Split data/an4_train.jsonl: 4 training speakers held out for tuning decoding weights, the rest for LM text."""
import json
import sys
from pathlib import Path

TUNE_SPEAKERS = {"an4:fclc", "an4:fkdo", "an4:mcfl", "an4:mmsh"}
out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/lm-spelled/data")
out.mkdir(parents=True, exist_ok=True)
rows = [json.loads(line) for line in open("data/an4_train.jsonl")]
tune = [r for r in rows if r["speaker"] in TUNE_SPEAKERS]
rest = [r for r in rows if r["speaker"] not in TUNE_SPEAKERS]
assert len({r["speaker"] for r in tune}) == len(TUNE_SPEAKERS)
for name, part in (("tune_an4.jsonl", tune), ("an4_lmtrain.jsonl", rest)):
    (out / name).write_text("".join(json.dumps(r) + "\n" for r in part))
print(json.dumps({"tune": len(tune), "lm": len(rest)}))
