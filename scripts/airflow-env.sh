# Environment for running Airflow against the embedded stack (sourced by make demo / make airflow).
# Starts the embedded Postgres if needed and exports the connections and LABEL_BACKFILL_* settings.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="${LABEL_BACKFILL_LOCAL_DIR:-$REPO/.local}"
export LABEL_BACKFILL_LOCAL_DIR="$LOCAL"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$LOCAL/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$REPO/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$REPO/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export LABEL_BACKFILL_REPORT_DIR="${LABEL_BACKFILL_REPORT_DIR:-$REPO/reports}"
mkdir -p "$AIRFLOW_HOME"
# Every value comes shell-quoted (shlex.quote), so eval keeps a path with a quote or a space one word; a
# failed start stops the sourcing script here (eval of nothing would carry on without connections).
_label_backfill_env="$("$REPO/.venv/bin/python" -m label_backfill.dev.stack env)" || {
  echo "airflow-env.sh: python -m label_backfill.dev.stack env failed" >&2
  return 1
}
eval "$_label_backfill_env"
unset _label_backfill_env
