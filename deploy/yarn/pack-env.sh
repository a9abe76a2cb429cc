#!/usr/bin/env bash
# Build the packed Python environment that deploy/yarn/submit.sh ships with
# --archives: a fresh virtual environment with the deepclust wheel and its
# pinned dependencies, packed by venv-pack (from PyPI).
#
#   deploy/yarn/pack-env.sh [OUTPUT.tar.gz]
#   hdfs dfs -put -f deepclust-env.tar.gz /apps/deepclust/
#
# venv-pack keeps the link to the base interpreter, so every YARN node needs
# the same Python version at the same path as this machine. TORCH_SPEC picks
# the torch build, e.g. a CUDA build for GPU training.
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUTPUT="$(realpath -m "${1:-deepclust-env.tar.gz}")"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"

"$REPO_DIR/deploy/build-wheel.sh"
wheel="$(ls -t "$REPO_DIR"/dist/deepclust-*.whl | head -n 1)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m venv "$work/env"
"$work/env/bin/pip" install --quiet "$TORCH_SPEC"
"$work/env/bin/pip" install --quiet "$wheel" venv-pack
"$work/env/bin/python" -c "import deepclust, pyspark, torch, mlflow"
"$work/env/bin/venv-pack" -p "$work/env" -o "$OUTPUT" --force
echo "Packed environment with $(basename "$wheel"): $OUTPUT"
