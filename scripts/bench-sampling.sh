#!/usr/bin/env bash
# Benchmark of process sampling (not a test): 200 processes discovered and sampled per interval,
# CPU time per sample and fraction of one core, for the procfs and the sysinfo samplers (Linux; sysinfo
# only elsewhere), against `ps` over the same pids in the same run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec cargo bench --bench sampling "$@"
