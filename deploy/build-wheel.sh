#!/usr/bin/env bash
# Build the deepclust wheel into dist/. Every target installs this wheel into
# the Python environment of its driver and executors (deploy/README.md).
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"

cd "$REPO_DIR"
"$PYTHON" -m pip wheel . --no-deps -w dist/
ls -l dist/deepclust-*.whl
