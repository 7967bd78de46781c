#!/usr/bin/env bash
# make demo: simulate the incident on the embedded stack, show the drift, repair it with the backfill DAG
# (airflow dags test, local runner) and show the report.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"
source scripts/airflow-env.sh
PY=.venv/bin/python
CUSTOMER=alaska-air START=2026-02-01 END=2026-02-14

echo "== 1. Simulate the incident (small scale, seed 7)"
$PY -m label_backfill.dev.simulate --scale small --seed 7

echo
echo "== 2. Postgres vs ClickHouse before any repair"
$PY -m label_backfill.dev.compare --customer $CUSTOMER --start-date $START --end-date $END

echo
LOG="$LABEL_BACKFILL_LOCAL_DIR/demo-airflow.log"
echo "== 3. Backfill: airflow dags test conversation_labels_backfill (log: $LOG)"
.venv/bin/airflow db migrate > "$LOG" 2>&1
conf="{\"customer\": \"$CUSTOMER\", \"start_date\": \"$START\", \"end_date\": \"$END\"}"
SECONDS=0
if ! .venv/bin/airflow dags test conversation_labels_backfill -c "$conf" >> "$LOG" 2>&1; then
  echo "airflow dags test failed; last lines of the log:"; tail -40 "$LOG"; exit 1
fi
echo "DAG run finished in ${SECONDS} s"

echo
# verify logs "EXACT; report: file:///.../<run id made safe>.json": this run's report, wherever it was written
url="$(grep -o 'report: file://[^ ]*\.json' "$LOG" | tail -1 || true)"
[[ -n "$url" ]] || { echo "no local report named in $LOG (LABEL_BACKFILL_REPORT_DIR=$LABEL_BACKFILL_REPORT_DIR)"; exit 1; }
report="${url#report: file://}"
report="${report%.json}"
echo "== 4. The run's report ($report.md)"
sed -n '/## Before -> after/,$p' "$report.md"
$PY - "$report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
b, a = r["before"]["totals"], r["after"]["totals"]
print(f"\nduplicates {b['duplicates']} -> {a['duplicates']}, stale {b['stale']} -> {a['stale']}, "
      f"rows {b['ch_rows']} -> {a['ch_rows']} (Postgres {a['pg_eligible']}): {'EXACT' if r['ok'] else 'NOT EXACT'}")
sys.exit(0 if r["ok"] else 1)
PY
