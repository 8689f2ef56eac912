#!/usr/bin/env bash
# Debian's tmux for the Ctrl-C tests (tests/e2e/test_interrupt.py): a real terminal whose
# foreground process group gets SIGINT from `send-keys C-c`. Idempotent; needs root and apt.
set -euo pipefail
if ! command -v tmux >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tmux >/dev/null
fi
tmux -V
