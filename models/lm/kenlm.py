"""Run KenLM's `lmplz` and `build_binary` (built by `scripts/build-kenlm.sh`), recording time and peak memory.

    python -m models.lm.kenlm --corpus runs/lm/lm_train.txt --out runs/lm/4gram \
        --order 4 --prune 0 1 1 1 --vocab runs/lm/vocab.txt

writes `OUT/lm.arpa` (modified Kneser-Ney, interpolated, as `lmplz` always builds), `OUT/lm.klm`
(a `build_binary` trie with 8-bit quantized probabilities and backoffs and array pointer
compression of up to 22 bits: `-a 22 -q 8 -b 8 trie`) and `OUT/build.json`: the commands, wall time, CPU time and
peak resident memory of each (GNU time's `-v` figures) and the n-gram counts. `--vocab` limits the
model to those words (`lmplz --limit_vocab_file`: n-grams holding another word are dropped, the
rest of the text still counts), which keeps the binary small and matched to the lexicon.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

TOOLS = Path(os.environ.get("KENLM_BIN", Path(__file__).resolve().parents[2] / ".tools" / "kenlm" / "bin"))
GNU_TIME = "/usr/bin/time"


@dataclass(frozen=True)
class Measured:
    command: list[str]
    wall_seconds: float
    cpu_seconds: float
    peak_rss_mb: float


def tool(name: str) -> str:
    path = TOOLS / name
    if not path.is_file():
        raise SystemExit(f"{path}: not found; build KenLM with scripts/build-kenlm.sh (or set KENLM_BIN)")
    return str(path)


def _wall(text: str) -> float:
    match = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", text)
    if not match:
        return float("nan")
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)


def run_measured(command: list[str], *, stdin: Path | None = None, stdout: Path | None = None, log: Path) -> Measured:
    """Run `command` under GNU time -v; its stderr (the tool's and time's) goes to `log`."""
    with open(log, "w") as err, open(stdin, "rb") if stdin else open(os.devnull, "rb") as inp, \
            open(stdout, "wb") if stdout else open(os.devnull, "wb") as out:  # fmt: skip
        result = subprocess.run([GNU_TIME, "-v", *command], stdin=inp, stdout=out, stderr=err, check=False)
    text = log.read_text(errors="replace")
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({result.returncode}); see {log}:\n{text[-2000:]}")
    user = float(re.search(r"User time \(seconds\): ([\d.]+)", text).group(1))  # type: ignore[union-attr]
    system = float(re.search(r"System time \(seconds\): ([\d.]+)", text).group(1))  # type: ignore[union-attr]
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))  # type: ignore[union-attr]
    return Measured(command, _wall(text), user + system, rss_kb / 1024)


def arpa_counts(path: Path) -> dict[int, int]:
    counts = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            match = re.match(r"ngram (\d+)=(\d+)", line)
            if match:
                counts[int(match.group(1))] = int(match.group(2))
            elif line.startswith("\\1-grams:"):
                break
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m models.lm.kenlm", description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True, help="normalised text, one sentence a line")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--order", type=int, default=4)
    parser.add_argument("--prune", type=int, nargs="*", default=[0, 1, 1, 1], help="lmplz --prune thresholds per order (unigrams: 0)")
    parser.add_argument("--vocab", type=Path, help="lmplz --limit_vocab_file: keep only n-grams of these words")
    parser.add_argument("--memory", default="3G", help="lmplz -S (sorting memory)")
    parser.add_argument("--temp", type=Path, default=Path("/tmp"), help="lmplz -T")
    parser.add_argument("--binary", default="-a 22 -q 8 -b 8 trie", help="build_binary options before the files")
    parser.add_argument("--discount-fallback", action="store_true", help="lmplz --discount_fallback (tiny corpora)")
    parser.add_argument("--keep-arpa", action="store_true", help="keep OUT/lm.arpa (default: removed once the binary is built)")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    arpa, binary = args.out / "lm.arpa", args.out / "lm.klm"
    lmplz = [tool("lmplz"), "-o", str(args.order), "-S", args.memory, "-T", str(args.temp)]
    if args.prune:
        lmplz += ["--prune", *map(str, args.prune)]
    if args.vocab:
        lmplz += ["--limit_vocab_file", str(args.vocab)]
    if args.discount_fallback:
        lmplz += ["--discount_fallback"]
    built = run_measured(lmplz, stdin=args.corpus, stdout=arpa, log=args.out / "lmplz.log")
    print(f"lmplz: {built.wall_seconds:.0f} s wall, {built.cpu_seconds:.0f} s CPU, {built.peak_rss_mb:.0f} MB peak", file=sys.stderr)
    counts = arpa_counts(arpa)
    converted = run_measured([tool("build_binary"), *args.binary.split(), str(arpa), str(binary)],
                             log=args.out / "build_binary.log")
    report = {"lmplz": asdict(built), "build_binary": asdict(converted), "ngrams": counts,
              "arpa_bytes": arpa.stat().st_size, "binary_bytes": binary.stat().st_size}
    if not args.keep_arpa:
        arpa.unlink()
    (args.out / "build.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: report[k] for k in ("ngrams", "arpa_bytes", "binary_bytes")}))


if __name__ == "__main__":
    main()
