"""Decoders: `[T, V]` emissions -> hypotheses.

- `greedy`: greedy CTC (`greedy_ctc`) and Viterbi ASG (`viterbi_asg`), with their frames;
- `beam_search` (`dispatch`): CTC or ASG beam search with a lexicon, n-gram shallow fusion and
  hotwords, on the reference engine (`reference`) or flashlight-text's (`flashlight`);
- `alignment`: forced alignment of a known labelling (the reference engine's frames).

Every beam search returns `Hypothesis` objects (`types`), the one type rescoring reads too.
"""

from app.asr.decoders.alignment import align_asg, align_ctc, word_spans
from app.asr.decoders.dispatch import beam_search
from app.asr.decoders.greedy import asg_segments, ctc_segments, greedy_ctc, viterbi_asg
from app.asr.decoders.types import MAX_BEAM_SIZE, BeamOptions, Hypothesis

__all__ = [
    "MAX_BEAM_SIZE",
    "BeamOptions",
    "Hypothesis",
    "align_asg",
    "align_ctc",
    "asg_segments",
    "beam_search",
    "ctc_segments",
    "greedy_ctc",
    "viterbi_asg",
    "word_spans",
]
