"""`python -m bench`: the same as `asr-bench`."""

from bench.suite import main

raise SystemExit(main())
