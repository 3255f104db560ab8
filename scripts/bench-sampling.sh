#!/usr/bin/env bash
# Benchmark of process sampling (not a test): 200 processes discovered and sampled per interval,
# CPU time per sample and fraction of one core, against `ps` over the same pids in the same run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec cargo bench --bench sampling "$@"
