"""Benchmarks, apart from the server and the export step: `asr-bench` (`bench.suite`, every performance figure
side by side; `python -m bench` too) and the Whisper reference (`asr-eval-whisper`). docs/benchmarks.md says what each number means."""
