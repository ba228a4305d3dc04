"""Build the training corpus: synthetic speech from offline TTS engines plus real recordings.

- ``text``: normalised sentence pools and the hash-based held-out split;
- ``engines``: the voice table and Debian's engines (espeak-ng, flite, festival);
- ``kokoro``: Kokoro-82M with a new blended voice per clip (optional ``tts`` extra);
- ``build``: planning, execution, manifests and the command line
  (``python -m models.train.corpus --out data/corpus --sentences 14000 --workers 2``).
"""

from models.train.corpus.build import DATA_DIR, main, plan_corpus, run_job, write_manifests
from models.train.corpus.engines import HELDOUT_SPEAKERS, ClipSpec, make_synth_spec
from models.train.corpus.text import TextPools, build_text_pools, is_heldout, write_lines

__all__ = [
    "DATA_DIR", "HELDOUT_SPEAKERS", "ClipSpec", "TextPools",
    "build_text_pools", "is_heldout", "main", "make_synth_spec", "plan_corpus", "run_job", "write_lines", "write_manifests",
]  # fmt: skip
