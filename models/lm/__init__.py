"""Offline n-gram language-model building: text preparation, lexicon, KenLM's `lmplz`/`build_binary`.

- ``corpus``: every file of the shared text folder, normalised like everything else the project
  scores, held-out sentences and books removed, word counts and lexicons
  (``python -m models.lm.corpus --text ../shared/data/text --out runs/lm``);
- ``kenlm``: runs KenLM's tools (built by ``scripts/build-kenlm.sh``) with time and memory recorded
  (``python -m models.lm.kenlm --corpus runs/lm/lm_train.txt --out runs/lm/4gram``).
"""
