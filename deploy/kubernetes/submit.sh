#!/usr/bin/env bash
# Submit the training or scoring job to Kubernetes in cluster mode.
#
#   K8S_MASTER=k8s://https://api-server:6443 DEEPCLUST_IMAGE=REGISTRY/deepclust:0.1.0 \
#   MLFLOW_TRACKING_URI=https://mlflow.example.com \
#       deploy/kubernetes/submit.sh train --config /opt/deepclust/conf/mnist_mlp.yaml
#
# The driver and the executors run in pods of DEEPCLUST_IMAGE
# (deploy/kubernetes/Dockerfile), which has the deepclust wheel installed.
# The config path is read inside the driver pod: use a config baked into the
# image (/opt/deepclust/conf) or one on a mounted volume.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

: "${K8S_MASTER:?Set K8S_MASTER to the API server, e.g. k8s://https://api-server:6443}"
: "${DEEPCLUST_IMAGE:?Set DEEPCLUST_IMAGE to the image built from deploy/kubernetes/Dockerfile}"
: "${MLFLOW_TRACKING_URI:?Set MLFLOW_TRACKING_URI to the tracking server, e.g. https://mlflow.example.com}"
K8S_NAMESPACE="${K8S_NAMESPACE:-deepclust}"
K8S_SERVICE_ACCOUNT="${K8S_SERVICE_ACCOUNT:-spark}"

# Paths inside the image.
JOB_SCRIPT="local:///opt/deepclust/jobs/$JOB.py"
GPU_DISCOVERY_SCRIPT=/opt/deepclust/gpu/get-gpus.sh

SUBMIT_CONF+=(
    "spark.kubernetes.container.image=$DEEPCLUST_IMAGE"
    "spark.kubernetes.namespace=$K8S_NAMESPACE"
    "spark.kubernetes.authenticate.driver.serviceAccountName=$K8S_SERVICE_ACCOUNT"
    "spark.executor.instances=$NUM_EXECUTORS"
    # Dynamic allocation could drop executors that a barrier stage needs.
    "spark.dynamicAllocation.enabled=false"
    "spark.kubernetes.executor.request.cores=$EXECUTOR_CORES"
    "spark.pyspark.python=python3"
    "spark.pyspark.driver.python=python3"
    # The driver pod needs the tracking settings. Secrets go in
    # MLFLOW_TRACKING_TOKEN, which Spark redacts from its UI and logs; a
    # Kubernetes secret (spark.kubernetes.driver.secretKeyRef.*) is better.
    "spark.kubernetes.driverEnv.MLFLOW_TRACKING_URI=$MLFLOW_TRACKING_URI"
    "spark.kubernetes.driverEnv.MLFLOW_HTTP_REQUEST_MAX_RETRIES=${MLFLOW_HTTP_REQUEST_MAX_RETRIES:-3}"
    "spark.kubernetes.driverEnv.MLFLOW_HTTP_REQUEST_TIMEOUT=${MLFLOW_HTTP_REQUEST_TIMEOUT:-60}"
    # The submitting process returns when the driver pod ends and reports
    # its exit status.
    "spark.kubernetes.submission.waitAppCompletion=true"
)
if [ -n "${MLFLOW_TRACKING_TOKEN:-}" ]; then
    SUBMIT_CONF+=("spark.kubernetes.driverEnv.MLFLOW_TRACKING_TOKEN=$MLFLOW_TRACKING_TOKEN")
fi
if [ "$JOB" = train ] && [ "$TRAIN_GPUS_PER_EXECUTOR" -gt 0 ]; then
    # The executor pods request nvidia.com/gpu from the device plugin.
    SUBMIT_CONF+=("spark.executor.resource.gpu.vendor=nvidia.com")
fi

submit \
    --master "$K8S_MASTER" \
    --deploy-mode cluster \
    --name "deepclust-$JOB" \
    --driver-memory "$DRIVER_MEMORY" \
    --executor-memory "$EXECUTOR_MEMORY"
