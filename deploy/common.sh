# Shared part of the spark-submit scripts in deploy/*/submit.sh; sourced, not run.
#
# Reads the job name (train or score) and the job's own arguments, and fills
# the arrays SUBMIT_CONF (--conf key=value pairs for every target), JOB_ARGS
# and the variable JOB_SCRIPT. Every setting below can be overridden from the
# environment; the defaults suit executors with 4 cores and 16 GiB.

set -euo pipefail

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$DEPLOY_DIR")"

usage() {
    cat >&2 <<USAGE
usage: $0 train --config CONFIG [--set SECTION.KEY=VALUE ...]
       $0 score --model-uri models:/NAME@champion --input PATH --output PATH --run-date YYYY-MM-DD
The job's arguments are passed through unchanged; see jobs/train.py --help
and jobs/score.py --help.
USAGE
    exit 2
}

[ $# -ge 1 ] || usage
JOB="$1"
shift
case "$JOB" in
    train | score) ;;
    *) echo "Invalid job '$JOB': expected train or score." >&2; usage ;;
esac

# Resources. NUM_EXECUTORS is also the number of DDP ranks of training.
DRIVER_MEMORY="${DRIVER_MEMORY:-4g}"
EXECUTOR_MEMORY="${EXECUTOR_MEMORY:-12g}"
EXECUTOR_CORES="${EXECUTOR_CORES:-4}"
NUM_EXECUTORS="${NUM_EXECUTORS:-2}"
# GPUs per executor for training. 0 trains on CPU with gloo, and scoring
# never requests GPUs.
TRAIN_GPUS_PER_EXECUTOR="${TRAIN_GPUS_PER_EXECUTOR:-0}"
# Path of the GPU discovery script as the executors see it.
GPU_DISCOVERY_SCRIPT="${GPU_DISCOVERY_SCRIPT:-$DEPLOY_DIR/gpu/get-gpus.sh}"

# The Python that has the deepclust wheel installed (see deploy/README.md).
# PYSPARK_DRIVER_PYTHON defaults to it; set it when the driver's differs.
DEEPCLUST_PYTHON="${DEEPCLUST_PYTHON:-/opt/deepclust/venv/bin/python}"

SUBMIT_CONF=(
    # A barrier stage with fewer free task slots than ranks fails at once
    # instead of retrying for minutes. The job sets these too.
    "spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures=1"
    "spark.scheduler.barrier.maxConcurrentTasksCheck.interval=1s"
    "spark.executor.cores=$EXECUTOR_CORES"
    "spark.ui.showConsoleProgress=false"
)

# More settings, as space-separated KEY=VALUE items, e.g.
# EXTRA_CONF="spark.sql.shuffle.partitions=64 spark.ui.port=4050".
read -r -a extra_conf <<<"${EXTRA_CONF:-}"
SUBMIT_CONF+=("${extra_conf[@]}")

if [ "$JOB" = train ]; then
    JOB_SCRIPT="$REPO_DIR/jobs/train.py"
    # One rank per executor: a task takes all the executor's cores, and the
    # rank's torch threads follow spark.task.cpus (OMP_NUM_THREADS).
    SUBMIT_CONF+=("spark.task.cpus=$EXECUTOR_CORES")
    # Barrier mode runs the ranks inside executor tasks, so these --set items
    # make the config match the executors that this script requests. --set
    # values given on the command line come later and win.
    JOB_ARGS=(--set train.local_mode=false --set "train.num_processes=$NUM_EXECUTORS")
    if [ "$TRAIN_GPUS_PER_EXECUTOR" -gt 0 ]; then
        JOB_ARGS+=(--set train.use_gpu=true)
    fi
    JOB_ARGS+=("$@")
else
    JOB_SCRIPT="$REPO_DIR/jobs/score.py"
    # Scoring runs one task per core.
    SUBMIT_CONF+=("spark.task.cpus=1")
    JOB_ARGS=("$@")
fi

# spark-submit of the Spark installation, else of the pyspark package that
# SUBMIT_PYTHON (default DEEPCLUST_PYTHON) imports. The pip package ships
# bin/spark-submit, which finds Spark through SPARK_HOME.
if [ -z "${SPARK_SUBMIT:-}" ]; then
    if [ -z "${SPARK_HOME:-}" ]; then
        if ! command -v "${SUBMIT_PYTHON:-$DEEPCLUST_PYTHON}" >/dev/null; then
            echo "Python '${SUBMIT_PYTHON:-$DEEPCLUST_PYTHON}' not found: set SPARK_HOME to a Spark installation, or SUBMIT_PYTHON to a Python with pyspark." >&2
            exit 2
        fi
        SPARK_HOME="$("${SUBMIT_PYTHON:-$DEEPCLUST_PYTHON}" -c \
            'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
        export SPARK_HOME
    fi
    SPARK_SUBMIT="$SPARK_HOME/bin/spark-submit"
fi

# Run spark-submit with the given options, SUBMIT_CONF (plus the GPU settings
# of training), JOB_SCRIPT and JOB_ARGS. The command is printed first, so a failed submit can be repeated.
submit() {
    local command=("$SPARK_SUBMIT" "$@") item
    if [ "$JOB" = train ] && [ "$TRAIN_GPUS_PER_EXECUTOR" -gt 0 ]; then
        SUBMIT_CONF+=(
            "spark.executor.resource.gpu.amount=$TRAIN_GPUS_PER_EXECUTOR"
            "spark.executor.resource.gpu.discoveryScript=$GPU_DISCOVERY_SCRIPT"
            # One GPU per task, and so per rank.
            "spark.task.resource.gpu.amount=1"
        )
    fi
    for item in "${SUBMIT_CONF[@]}"; do
        command+=(--conf "$item")
    done
    command+=("$JOB_SCRIPT" "${JOB_ARGS[@]}")
    printf '%q ' "${command[@]}" >&2
    printf '\n' >&2
    exec "${command[@]}"
}
