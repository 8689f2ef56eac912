#!/usr/bin/env bash
# Debian's Chromium for the report's browser test (tests/e2e/test_report.py), driven by
# Playwright for Python with executable_path=/usr/bin/chromium (never `playwright install`,
# which downloads a browser build). Idempotent; needs root and apt. Prints the version.
set -euo pipefail
if ! command -v chromium >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
chromium --version 2>/dev/null
