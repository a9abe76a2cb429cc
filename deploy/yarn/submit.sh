#!/usr/bin/env bash
# Submit the training or scoring job to YARN in cluster mode.
#
#   DEEPCLUST_ENV_ARCHIVE=hdfs:///apps/deepclust/deepclust-env.tar.gz \
#       deploy/yarn/submit.sh train --config conf/mnist_mlp.yaml
#
# The Python environment with the deepclust wheel travels as a packed virtual
# environment (deploy/yarn/pack-env.sh) that YARN unpacks as ./environment in
# every container. The config file is shipped with --files and read by its
# base name, because the driver runs in a YARN container.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

if [ -z "${DEEPCLUST_ENV_ARCHIVE:-}" ]; then
    echo "Missing DEEPCLUST_ENV_ARCHIVE: set it to the packed environment built by deploy/yarn/pack-env.sh, e.g. hdfs:///apps/deepclust/deepclust-env.tar.gz." >&2
    exit 2
fi
ENV_PYTHON=./environment/bin/python
# The discovery script is shipped with --files into each container's folder.
GPU_DISCOVERY_SCRIPT="./$(basename "$GPU_DISCOVERY_SCRIPT")"

# Ship a training config and pass its base name to the job.
FILES=("$DEPLOY_DIR/gpu/get-gpus.sh")
for index in "${!JOB_ARGS[@]}"; do
    if [ "${JOB_ARGS[$index]}" = --config ]; then
        config="${JOB_ARGS[$((index + 1))]}"
        FILES+=("$config")
        JOB_ARGS[$((index + 1))]="$(basename "$config")"
    fi
done

SUBMIT_CONF+=(
    "spark.executor.instances=$NUM_EXECUTORS"
    # Dynamic allocation could drop executors that a barrier stage needs.
    "spark.dynamicAllocation.enabled=false"
    "spark.yarn.dist.archives=$DEEPCLUST_ENV_ARCHIVE#environment"
    "spark.pyspark.python=$ENV_PYTHON"
    "spark.pyspark.driver.python=$ENV_PYTHON"
    "spark.executorEnv.PYSPARK_PYTHON=$ENV_PYTHON"
    "spark.yarn.appMasterEnv.PYSPARK_PYTHON=$ENV_PYTHON"
    # The driver runs in the application master, so it needs the tracking
    # settings there. Secrets go in MLFLOW_TRACKING_TOKEN, which Spark
    # redacts from its UI and logs.
    "spark.yarn.appMasterEnv.MLFLOW_TRACKING_URI=${MLFLOW_TRACKING_URI:?Set MLFLOW_TRACKING_URI to the tracking server, e.g. https://mlflow.example.com}"
    "spark.yarn.appMasterEnv.MLFLOW_HTTP_REQUEST_MAX_RETRIES=${MLFLOW_HTTP_REQUEST_MAX_RETRIES:-3}"
    "spark.yarn.appMasterEnv.MLFLOW_HTTP_REQUEST_TIMEOUT=${MLFLOW_HTTP_REQUEST_TIMEOUT:-60}"
    # A second attempt would rerun a failed job from the start; fail once.
    "spark.yarn.maxAppAttempts=1"
)
if [ -n "${MLFLOW_TRACKING_TOKEN:-}" ]; then
    SUBMIT_CONF+=("spark.yarn.appMasterEnv.MLFLOW_TRACKING_TOKEN=$MLFLOW_TRACKING_TOKEN")
fi

submit \
    --master yarn \
    --deploy-mode cluster \
    --name "deepclust-$JOB" \
    --driver-memory "$DRIVER_MEMORY" \
    --executor-memory "$EXECUTOR_MEMORY" \
    --files "$(IFS=,; echo "${FILES[*]}")"
