"""The Wav2Letter recipe's former name: `python -m models.train.acoustic ...` runs `models.train.wav2letter`.

Kept so that commands and running jobs started under the old name go on working; use
`python -m models.train.wav2letter` (or `asr-train wav2letter`). docs/training.md says the same."""

from models.train.wav2letter import *  # noqa: F403
from models.train.wav2letter import main

if __name__ == "__main__":
    main()
