"""`asr-train RECIPE ...` (or `python -m models.train RECIPE ...`): one entry point for the recipes.

    asr-train corpus --out data/corpus40 --sentences 40000
    asr-train wav2letter --train ... --dev ... --out runs/w2l-asg --criterion asg
    asr-train txl --text ... --heldout ... --out runs/txl
    asr-train wav2vec2 finetune --train ... --dev ... --out runs/w2v2
    asr-train punctuation prepare --data ../shared/data --out data/punct
"""

from __future__ import annotations

import importlib
import sys

RECIPES = {"corpus": "models.train.corpus", "wav2letter": "models.train.wav2letter", "txl": "models.train.txl", "wav2vec2": "models.train.wav2vec2",
           "punctuation": "models.train.punctuation"}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in RECIPES:
        print(__doc__)
        print(f"recipes: {', '.join(RECIPES)}", file=sys.stderr)
        raise SystemExit(2)
    module = importlib.import_module(RECIPES[args[0]])
    sys.argv = [f"asr-train {args[0]}", *args[1:]]
    result = module.main(args[1:]) if _takes_argv(module.main) else module.main()
    raise SystemExit(result if isinstance(result, int) else 0)


def _takes_argv(fn: object) -> bool:
    import inspect

    return bool(inspect.signature(fn).parameters)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
