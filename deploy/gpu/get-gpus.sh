#!/usr/bin/env bash
# Spark GPU discovery script: prints the GPUs of this node as the JSON that
# spark.{driver,executor,worker}.resource.gpu.discoveryScript must print, e.g.
#   {"name": "gpu", "addresses": ["0", "1"]}
# The addresses are the nvidia-smi indices, which CUDA_VISIBLE_DEVICES uses.
set -euo pipefail

if ! indices="$(nvidia-smi --query-gpu=index --format=csv,noheader 2>&1)"; then
    echo "GPU discovery failed: nvidia-smi did not run ($indices). Install the NVIDIA driver on this node, or set TRAIN_GPUS_PER_EXECUTOR=0." >&2
    exit 1
fi
addresses="$(printf '%s\n' "$indices" | sed -e 's/[[:space:]]//g' -e '/^$/d' -e 's/.*/"&"/' | paste -sd, -)"
printf '{"name": "gpu", "addresses": [%s]}\n' "$addresses"
