#!/usr/bin/env python3
"""Container health check: GET /readyz on the local server; exit 0 when ready, 1 otherwise.

Standard library only, so that it costs one short interpreter start per check. When the server
requires API keys (`ASR_API_KEYS`, `ASR_API_KEYS_FILE`), it sends the first configured key as a
bearer token, read the same way `app.config.Settings.all_api_keys` reads them. The address comes
from `ASR_HOST`/`ASR_PORT` (a wildcard bind is checked on the loopback address).

    healthcheck.py [--path /readyz] [--timeout 4] [--url http://127.0.0.1:8000/readyz]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

WILDCARDS = {"", "0.0.0.0", "::", "[::]"}


def parse_keys(value: str) -> list[str]:
    """`ASR_API_KEYS`: a JSON list or comma-separated tokens (as `Settings._split_csv`)."""
    if value.strip().startswith("["):
        return [str(v) for v in json.loads(value)]
    return [v.strip() for v in value.split(",") if v.strip()]


def first_api_key(env: Mapping[str, str]) -> str | None:
    """The first key of `ASR_API_KEYS`, else of `ASR_API_KEYS_FILE`; None when neither has one."""
    keys = parse_keys(env.get("ASR_API_KEYS", ""))
    path = env.get("ASR_API_KEYS_FILE", "")
    if not keys and path:
        with open(path, encoding="utf-8") as f:
            keys = [line.strip() for line in f.read().splitlines() if line.strip() and not line.startswith("#")]
    return keys[0] if keys else None


def readiness_url(env: Mapping[str, str], path: str = "/readyz") -> str:
    host = env.get("ASR_HOST", "127.0.0.1").strip()
    host = "127.0.0.1" if host in WILDCARDS else host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{env.get('ASR_PORT', '8000').strip() or '8000'}{path}"


def check(url: str, *, token: str | None, timeout: float) -> tuple[bool, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status == 200, f"{response.status} {response.read(500).decode(errors='replace')}"
    except urllib.error.HTTPError as e:
        return False, f"{e.code} {e.read(500).decode(errors='replace')}"
    except (OSError, ValueError) as e:
        return False, f"unreachable: {e}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default="/readyz")
    parser.add_argument("--url", help="full URL (default: from ASR_HOST and ASR_PORT)")
    parser.add_argument("--timeout", type=float, default=4.0)
    args = parser.parse_args(argv)
    try:
        token = first_api_key(os.environ)
    except (OSError, ValueError) as e:
        print(f"unhealthy: cannot read the API keys: {e}", file=sys.stderr)
        return 1
    url = args.url or readiness_url(os.environ, args.path)
    ok, detail = check(url, token=token, timeout=args.timeout)
    print(f"{'healthy' if ok else 'unhealthy'}: {url} -> {detail}", file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
