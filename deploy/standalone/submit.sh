#!/usr/bin/env bash
# Submit the training or scoring job to a Spark standalone cluster.
#
#   SPARK_MASTER=spark://master-host:7077 deploy/standalone/submit.sh train --config conf/mnist_mlp.yaml
#   SPARK_MASTER=spark://master-host:7077 deploy/standalone/submit.sh score \
#       --model-uri models:/deepclust@champion --input PATH --output PATH --run-date 2026-01-31
#
# Client mode: the driver runs here, because a standalone cluster cannot run
# a Python driver in cluster mode. Every node must have the deepclust wheel
# installed in DEEPCLUST_PYTHON at the same path (deploy/README.md).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

if [ -z "${SPARK_MASTER:-}" ]; then
    echo "Missing SPARK_MASTER: set it to the master URL, e.g. spark://master-host:7077." >&2
    exit 2
fi

SUBMIT_CONF+=(
    "spark.pyspark.python=$DEEPCLUST_PYTHON"
    "spark.pyspark.driver.python=${PYSPARK_DRIVER_PYTHON:-$DEEPCLUST_PYTHON}"
    # Standalone starts as many executors as the cores allow; the cap keeps
    # training at NUM_EXECUTORS ranks.
    "spark.cores.max=$((NUM_EXECUTORS * EXECUTOR_CORES))"
    # Seconds the job waits for its first executor before it fails with a
    # message, instead of waiting forever when no worker has room.
    "spark.deepclust.executorWaitTimeout=${EXECUTOR_WAIT_SECONDS:-120}"
)

submit \
    --master "$SPARK_MASTER" \
    --deploy-mode client \
    --name "deepclust-$JOB" \
    --driver-memory "$DRIVER_MEMORY" \
    --executor-memory "$EXECUTOR_MEMORY"
