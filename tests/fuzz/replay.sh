#!/bin/bash
# Replay a fuzz target's seed corpus (a regression test without libFuzzer).
set -euo pipefail
"$1" "$2"/*
