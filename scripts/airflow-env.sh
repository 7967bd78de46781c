# Environment for running Airflow against the embedded stack (sourced by make demo / make airflow).
# Starts the embedded Postgres if needed and exports the connections and LABEL_BACKFILL_* settings.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Private files on a shared host: everything this shell and its children write (reports, the Airflow home
# with airflow.db and the logs, the embedded stack's data; Airflow components, task processes and
# `airflow dags test` inherit the umask) is readable by the owner only. Airflow chmods task log files and
# folders itself, to the modes set below.
umask 077
export AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FILE_PERMISSIONS=0o600
export AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FOLDER_PERMISSIONS=0o700
LOCAL="${LABEL_BACKFILL_LOCAL_DIR:-$REPO/.local}"
LOCAL="$(mkdir -p "$LOCAL" && cd "$LOCAL" && pwd)" # absolute: the scripts print paths under it
export LABEL_BACKFILL_LOCAL_DIR="$LOCAL"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$LOCAL/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$REPO/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$REPO/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export LABEL_BACKFILL_REPORT_DIR="${LABEL_BACKFILL_REPORT_DIR:-$LOCAL/reports}"
mkdir -p "$AIRFLOW_HOME"
# The default folders (ours): closed to others, also when an earlier version created them world-readable.
for _label_backfill_dir in "$REPO/.local" "$REPO/reports"; do
  if [[ -d "$_label_backfill_dir" && ! -L "$_label_backfill_dir" ]]; then chmod go-rwx "$_label_backfill_dir"; fi
done
unset _label_backfill_dir
# Every value comes shell-quoted (shlex.quote), so eval keeps a path with a quote or a space one word; a
# failed start stops the sourcing script here (eval of nothing would carry on without connections).
_label_backfill_env="$("$REPO/.venv/bin/python" -m label_backfill.dev.stack env)" || {
  echo "airflow-env.sh: python -m label_backfill.dev.stack env failed" >&2
  return 1
}
eval "$_label_backfill_env"
unset _label_backfill_env
