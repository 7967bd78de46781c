# Environment for running Airflow against the embedded stack (sourced by make demo / make airflow).
# Starts the embedded Postgres if needed and exports the connections and LABEL_BACKFILL_* settings.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="${LABEL_BACKFILL_LOCAL_DIR:-$REPO/.local}"
LOCAL="$(mkdir -p "$LOCAL" && cd "$LOCAL" && pwd)" # absolute: the scripts print paths under it
export LABEL_BACKFILL_LOCAL_DIR="$LOCAL"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$LOCAL/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$REPO/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$REPO/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export LABEL_BACKFILL_REPORT_DIR="${LABEL_BACKFILL_REPORT_DIR:-$LOCAL/reports}"
mkdir -p "$AIRFLOW_HOME"
eval "$("$REPO/.venv/bin/python" -m label_backfill.dev.stack env)"
