#!/usr/bin/env bash
# make demo-fleet: simulate the three demo customers, start Airflow (scheduler, LocalExecutor, triggerer,
# api-server: scripts/airflow.sh) in its own folder on a free port, run the fleet's dry run, then one fleet
# repair of all three, print one line per customer with its verdict, and stop Airflow.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"
PY=.venv/bin/python
export LABEL_BACKFILL_LOCAL_DIR="${LABEL_BACKFILL_LOCAL_DIR:-$REPO/.local/demo-fleet}"
mkdir -p "$LABEL_BACKFILL_LOCAL_DIR"
export AIRFLOW_HOME="$LABEL_BACKFILL_LOCAL_DIR/airflow"
export LABEL_BACKFILL_REPORT_DIR="${LABEL_BACKFILL_REPORT_DIR:-$LABEL_BACKFILL_LOCAL_DIR/reports}"
export AIRFLOW_PORT="${AIRFLOW_PORT:-$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
export AIRFLOW_READY_TIMEOUT="${AIRFLOW_READY_TIMEOUT:-240}"

stop() { bash scripts/airflow.sh stop >/dev/null 2>&1 || true; }
trap stop EXIT
stop # an earlier demo's instance (its chdb data directory must be free for the simulator)

echo "== 1. Simulate the incident for three customers (small scale, seed 7)"
(source scripts/airflow-env.sh >/dev/null && $PY -m label_backfill.dev.simulate --scale small --seed 7)

echo "== 2. Start Airflow (logs: $AIRFLOW_HOME/run/)"
SECONDS=0
bash scripts/airflow.sh --background
echo "   healthy in ${SECONDS} s"

echo "== 3. The fleet"
$PY -m label_backfill.dev.fleet_demo --url "http://127.0.0.1:$AIRFLOW_PORT" \
  --password-file "$LABEL_BACKFILL_LOCAL_DIR/airflow-ui-password" --report-dir "$LABEL_BACKFILL_REPORT_DIR"
