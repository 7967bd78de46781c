#!/usr/bin/env bash
# make airflow: the Airflow UI on the embedded stack (embedded Postgres + chdb), http://127.0.0.1:8080,
# login admin with the password in $LABEL_BACKFILL_LOCAL_DIR/airflow-ui-password (.local/; mode 0600,
# a random one written on the first start).
#
#   scripts/airflow.sh               run in the foreground; Ctrl-C (or SIGTERM) stops every component
#   scripts/airflow.sh --background  start detached, wait until healthy, return (alias: start)
#   scripts/airflow.sh stop          stop a background (or orphaned) instance
#   scripts/airflow.sh status        print whether it runs and where
#   scripts/airflow.sh set-password  read a new UI password from stdin into the password file
#
# The password is only ever in that file and in SimpleAuthManager's own 0600 file under AIRFLOW_HOME: never
# in an environment variable, on a command line (/proc/*/cmdline is world-readable) or in any output.
#
# Components: api-server (127.0.0.1 only), scheduler, dag-processor, triggerer; LocalExecutor;
# metadata database "airflow" on the embedded Postgres server (four processes plus task processes write
# it at once: SQLite would serialise them and answer "database is locked").
#
# AIRFLOW__CORE__PARALLELISM (4 unless set): chdb allows ONE process per data directory at a time, and
# every task except validate opens it, each in its own task process. So every ClickHouse call of a task goes
# through a cross-process lock (label_backfill.chdb_lock: flock on <chdb dir>.lock) that opens the engine for
# that call only and closes it after: tasks run side by side and take turns per call, not per task. 4 slots:
# the default max_parallel_days; for runs with another value set it to that value. Not more: a slot beyond
# the run's days starts a day only for the day gate to reschedule it (~2 s of CPU per task process on 2
# cores), and Airflow 3.3.2 may then fail the day: a rescheduled day queued again before the scheduler read
# the executor's event of its reschedule is taken for "killed externally" ("finished with state success, but
# the task instance's state attribute is queued"), which costs the day a try. Seen 12-27 times in 49-day
# runs with ONE spare slot under load (days ran out of tries), never with none.
# What the lock costs is in README "Days in parallel on the embedded stack".
# Deferrable mode stays off by default (LABEL_BACKFILL_DEFERRABLE): it would be safe (the triggerer goes
# through the same lock) but saves nothing here, where the waits are short.
#
# Environment (all optional):
#   AIRFLOW_PORT (8080)  AIRFLOW_UI_USER (admin)  AIRFLOW_UI_PASSWORD_FILE ($LABEL_BACKFILL_LOCAL_DIR/airflow-ui-password)
#   AIRFLOW_READY_TIMEOUT (180 s, --background)  LABEL_BACKFILL_LOCAL_DIR (.local)  AIRFLOW_HOME
#   AIRFLOW__CORE__PARALLELISM (4)  LABEL_BACKFILL_CHDB_LOCK_TIMEOUT_SECONDS (300)  LABEL_BACKFILL_DEFERRABLE (false)
#   LABEL_BACKFILL_JOB_RUNNER (local; kubernetes needs AIRFLOW_CONN_KUBERNETES_DEFAULT)
#   LABEL_BACKFILL_RETRY_DELAY_SECONDS (5 here)  LABEL_BACKFILL_LOCAL_FAIL_DAYS / _ATTEMPTS (fault injection)
# Files: $LABEL_BACKFILL_LOCAL_DIR/airflow.pids, component logs in $AIRFLOW_HOME/run/*.log.
set -euo pipefail
umask 077 # everything this script and Airflow write is the owner's only (see scripts/airflow-env.sh)
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
SELF="$REPO/scripts/airflow.sh"
LOCAL="$(mkdir -p "${LABEL_BACKFILL_LOCAL_DIR:-$REPO/.local}" && cd "${LABEL_BACKFILL_LOCAL_DIR:-$REPO/.local}" && pwd)"
export LABEL_BACKFILL_LOCAL_DIR="$LOCAL"
PIDS="$LOCAL/airflow.pids"
PASSWORD_FILE="${AIRFLOW_UI_PASSWORD_FILE:-$LOCAL/airflow-ui-password}"
PORT="${AIRFLOW_PORT:-8080}"
URL="http://127.0.0.1:$PORT"
COMPONENTS=(api-server scheduler dag-processor triggerer)

say() { echo "[airflow.sh] $*"; }

# The UI password file: created with a random password when missing; refused when others may read it.
ensure_password_file() {
  if [[ -n "${AIRFLOW_UI_PASSWORD:-}" ]]; then
    say "AIRFLOW_UI_PASSWORD is not read (an environment variable reaches every child process): write the" \
      "password to $PASSWORD_FILE (scripts/airflow.sh set-password reads it from stdin) and unset it"
    exit 1
  fi
  if [[ ! -e "$PASSWORD_FILE" ]]; then
    (umask 077 && "$REPO/.venv/bin/python" -c 'import secrets; print(secrets.token_urlsafe(18))' > "$PASSWORD_FILE")
    say "generated a random UI password in $PASSWORD_FILE"
  fi
  local mode owner
  read -r mode owner < <(stat -L -c '%a %u' "$PASSWORD_FILE")
  if ((8#$mode & 8#077)) || [[ "$owner" != "$(id -u)" ]]; then
    say "$PASSWORD_FILE must be yours with mode 0600 (it is $mode, uid $owner): chmod 600 $PASSWORD_FILE"
    exit 1
  fi
  [[ -s "$PASSWORD_FILE" ]] || { say "$PASSWORD_FILE is empty"; exit 1; }
}

set_password() {
  # The password comes from stdin (not echoed on a terminal) and reaches the file through bash builtins only.
  local password=""
  if [[ -t 0 ]]; then
    read -rsp "New Airflow UI password for ${AIRFLOW_UI_USER:-admin}: " password
    echo
  else
    IFS= read -r password || true
  fi
  [[ -n "$password" ]] || { say "no password on stdin; nothing changed"; exit 1; }
  (umask 077 && printf '%s\n' "$password" > "$PASSWORD_FILE.new") && mv -f "$PASSWORD_FILE.new" "$PASSWORD_FILE"
  chmod 600 "$PASSWORD_FILE"
  say "password saved in $PASSWORD_FILE (mode 0600); it applies from the next start"
}

# A zombie is not alive (here PID 1 may take a while to reap orphans killed with -9).
alive() { [[ -n "${1:-}" ]] && ps -o stat= -p "$1" 2>/dev/null | grep -qv '^Z'; }
group_alive() { ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ {f = 1} END {exit !f}'; }

# The processes of a pids file ("name pid" lines; each component leads its own process group).
pid_of() { [[ -f "$PIDS" ]] && awk -v n="$1" '$1 == n {print $2}' "$PIDS" | tail -1; return 0; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

healthy() {
  # /api/v2/monitor/health needs no login; every component must report healthy.
  "$REPO/.venv/bin/python" - "$URL" <<'PY' 2>/dev/null
import json, sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1] + "/api/v2/monitor/health", timeout=3) as r:
        h = json.load(r)
except Exception:
    sys.exit(1)
parts = ("metadatabase", "scheduler", "dag_processor", "triggerer")
sys.exit(0 if all((h.get(p) or {}).get("status") == "healthy" for p in parts) else 1)
PY
}

kill_groups() {
  # TERM every listed process group, wait up to $2 s, then KILL what is left.
  local pids deadline=$((SECONDS + $2)) pid
  read -ra pids <<< "$1"
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  while ((SECONDS < deadline)); do
    local left=0
    for pid in "${pids[@]}"; do group_alive "$pid" && left=1; done
    ((left)) || return 0
    sleep 0.5
  done
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
}

stop_instance() {
  [[ -f "$PIDS" ]] || { say "not running (no $PIDS)"; return 0; }
  local sup
  sup="$(pid_of supervisor)"
  if alive "$sup"; then
    say "stopping (supervisor pid $sup)"
    kill -TERM "$sup" 2>/dev/null || true
    for _ in $(seq 1 80); do alive "$sup" || break; sleep 0.5; done
  fi
  # whatever survived (supervisor killed with -9, or stuck): the component groups themselves
  local groups
  groups="$(awk '$1 != "supervisor" {print $2}' "$PIDS" 2>/dev/null | xargs || true)"
  [[ -n "$groups" ]] && kill_groups "$groups" 10
  alive "$sup" && kill -KILL "$sup" 2>/dev/null
  rm -f "$PIDS"
  say "stopped"
}

status() {
  local sup
  sup="$(pid_of supervisor)"
  if alive "$sup"; then
    if healthy; then say "running and healthy at $URL (supervisor pid $sup)"; else say "running (supervisor pid $sup), not healthy yet"; fi
    return 0
  fi
  say "not running"
  return 1
}

prepare() {
  # Everything before the components start; idempotent (safe on every start).
  local runner="${LABEL_BACKFILL_JOB_RUNNER:-}"
  # shellcheck source=scripts/airflow-env.sh
  source "$REPO/scripts/airflow-env.sh" # starts the embedded Postgres, exports connections and settings
  # a runner the caller chose wins over the stack's "local" (benchmarks/bench_scheduler.py: kubernetes,
  # against a fake API server named by AIRFLOW_CONN_KUBERNETES_DEFAULT)
  if [[ -n "$runner" ]]; then export LABEL_BACKFILL_JOB_RUNNER="$runner"; fi
  export PATH="$REPO/.venv/bin:$PATH"
  export AIRFLOW__CORE__EXECUTOR=LocalExecutor
  export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
  export LABEL_BACKFILL_DEFERRABLE="${LABEL_BACKFILL_DEFERRABLE:-false}"
  export LABEL_BACKFILL_RETRY_DELAY_SECONDS="${LABEL_BACKFILL_RETRY_DELAY_SECONDS:-5}"
  # Metadata database: "airflow" on the embedded Postgres server (unix socket; the folder's path is
  # URL-quoted: it may hold spaces or quotes).
  AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="$("$REPO/.venv/bin/python" - <<'PY'
import json, os, urllib.parse
import psycopg
from psycopg.conninfo import make_conninfo
host = json.loads(os.environ["AIRFLOW_CONN_POSTGRES_CONVERSATIONS"])["host"]
with psycopg.connect(make_conninfo(host=host, user="postgres", dbname="postgres"), autocommit=True) as conn:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'airflow'").fetchone():
        conn.execute("CREATE DATABASE airflow")
print("postgresql+psycopg2://postgres@/airflow?host=" + urllib.parse.quote(host, safe="/"))
PY
)"
  export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN
  # API server: loopback only; tasks reach the execution API there.
  export AIRFLOW__API__HOST=127.0.0.1
  export AIRFLOW__API__PORT="$PORT"
  export AIRFLOW__API__WORKERS=1
  export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="$URL/execution/"
  # Login: SimpleAuthManager with one user and the password of $PASSWORD_FILE, copied into its passwords
  # file (rewritten each start, mode 0600) by reading the file: the password is never an argument.
  local user="${AIRFLOW_UI_USER:-admin}"
  export AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=False
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="$user:admin"
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="$AIRFLOW_HOME/simple_auth_manager_passwords.json"
  "$REPO/.venv/bin/python" - "$user" "$PASSWORD_FILE" "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" <<'PY'
import json, os, sys

user, source, target = sys.argv[1:]
with open(source) as f:
    password = f.readline().rstrip("\n")
fd = os.open(target + ".new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as f:
    json.dump({user: password}, f)
os.chmod(target + ".new", 0o600)
os.replace(target + ".new", target)
PY
  # Snappy local loop: new DAG files seen within 15 s, edited ones re-parsed within 10 s, scheduler
  # heartbeat 2 s (the scheduler loop itself idles 1 s, the Airflow default).
  export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="${AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL:-15}"
  export AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="${AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL:-10}"
  export AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="${AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC:-2}"
  export AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL="${AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL:-5}"
  mkdir -p "$AIRFLOW_HOME/run"
  say "airflow db migrate (log: $AIRFLOW_HOME/run/db-migrate.log)"
  if ! airflow db migrate > "$AIRFLOW_HOME/run/db-migrate.log" 2>&1; then
    tail -30 "$AIRFLOW_HOME/run/db-migrate.log"
    say "airflow db migrate failed"
    exit 1
  fi
}

supervise() {
  # Foreground: start the four components, each in its own session/process group (setsid), so that
  # stopping a group also ends its children (LocalExecutor workers, task processes, API workers).
  ensure_password_file
  local sup
  sup="$(pid_of supervisor)"
  if alive "$sup" && [[ "$sup" != "$$" ]]; then
    say "already running (supervisor pid $sup) at $URL; stop it with: scripts/airflow.sh stop"
    exit 1
  fi
  [[ -f "$PIDS" && "$sup" != "$$" ]] && stop_instance # leftovers of an instance killed with -9
  if port_busy; then
    say "port $PORT on 127.0.0.1 is already in use (another Airflow?); set AIRFLOW_PORT or free it"
    exit 1
  fi
  echo "supervisor $$" > "$PIDS"
  local stopping=0 tail_pid="" ready_pid=""
  declare -A pid_by_name=()
  # shellcheck disable=SC2317  # invoked from the traps below
  shutdown() {
    ((stopping)) && return
    stopping=1
    say "stopping ${!pid_by_name[*]}"
    [[ ${#pid_by_name[@]} -gt 0 ]] && kill_groups "${pid_by_name[*]}" 30
    for pid in $tail_pid $ready_pid; do kill "$pid" 2>/dev/null || true; done
    [[ "$(pid_of supervisor)" == "$$" ]] && rm -f "$PIDS"
    say "stopped"
  }
  trap 'shutdown; exit 130' INT
  trap 'shutdown; exit 143' TERM HUP
  trap 'shutdown' EXIT
  prepare
  local name
  for name in "${COMPONENTS[@]}"; do
    local log="$AIRFLOW_HOME/run/$name.log"
    : > "$log"
    if [[ "$name" == api-server ]]; then
      setsid airflow api-server --host 127.0.0.1 --port "$PORT" --workers 1 >> "$log" 2>&1 < /dev/null &
    elif [[ "$name" == dag-processor ]]; then
      setsid airflow dag-processor >> "$log" 2>&1 < /dev/null &
    else # no log server on 0.0.0.0:8793/8794: the API server reads the task logs from $AIRFLOW_HOME/logs
      setsid airflow "$name" --skip-serve-logs >> "$log" 2>&1 < /dev/null &
    fi
    pid_by_name[$name]=$!
    echo "$name $!" >> "$PIDS"
  done
  say "started: $(for n in "${!pid_by_name[@]}"; do printf '%s=%s ' "$n" "${pid_by_name[$n]}"; done)"
  say "logs: $AIRFLOW_HOME/run/{${COMPONENTS[*]// /,}}.log"
  (
    for _ in $(seq 1 "${AIRFLOW_READY_TIMEOUT:-180}"); do
      if healthy; then
        say "ready: $URL  login ${AIRFLOW_UI_USER:-admin}, password in $PASSWORD_FILE  (Ctrl-C stops)"
        exit 0
      fi
      sleep 1
    done
    say "not healthy after ${AIRFLOW_READY_TIMEOUT:-180} s; see the logs above"
  ) &
  ready_pid=$!
  if [[ -t 1 && -z "${AIRFLOW_SH_QUIET:-}" ]]; then
    tail -n 0 -F "$AIRFLOW_HOME"/run/{api-server,scheduler,dag-processor,triggerer}.log &
    tail_pid=$!
  fi
  # Any component exiting ends the whole instance (a half-started Airflow is worse than none).
  local code=0
  wait -n "${pid_by_name[@]}" || code=$?
  for name in "${!pid_by_name[@]}"; do
    alive "${pid_by_name[$name]}" || say "$name exited (status $code); last lines of its log:"
    alive "${pid_by_name[$name]}" || tail -20 "$AIRFLOW_HOME/run/$name.log" | sed "s/^/  [$name] /"
  done
  exit 1
}

background() {
  ensure_password_file
  local sup
  sup="$(pid_of supervisor)"
  if alive "$sup"; then
    if healthy; then say "already running at $URL (supervisor pid $sup)"; exit 0; fi
    say "an instance is starting or unhealthy (supervisor pid $sup); stop it with: scripts/airflow.sh stop"
    exit 1
  fi
  local out="$LOCAL/airflow.out"
  AIRFLOW_SH_QUIET=1 setsid bash "$SELF" run > "$out" 2>&1 < /dev/null &
  local pid=$! timeout="${AIRFLOW_READY_TIMEOUT:-180}"
  say "starting in the background (supervisor pid $pid, output $out)"
  local deadline=$((SECONDS + timeout))
  while ((SECONDS < deadline)); do
    if ! alive "$pid"; then
      tail -40 "$out"
      say "failed to start (see $out and $AIRFLOW_HOME_HINT)"
      exit 1
    fi
    if [[ "$(pid_of supervisor)" == "$pid" ]] && healthy; then
      say "ready: $URL  login ${AIRFLOW_UI_USER:-admin}, password in $PASSWORD_FILE  (stop: scripts/airflow.sh stop)"
      exit 0
    fi
    sleep 1
  done
  tail -40 "$out"
  say "not healthy after $timeout s; stopping"
  stop_instance
  exit 1
}

AIRFLOW_HOME_HINT="${AIRFLOW_HOME:-$LOCAL/airflow}/run/*.log"
case "${1:-run}" in
  run | --foreground) supervise ;;
  --background | start) background ;;
  stop | --stop) stop_instance ;;
  status) status ;;
  set-password) set_password ;;
  -h | --help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$SELF" ;;
  *)
    echo "usage: scripts/airflow.sh [run|--background|stop|status|set-password]" >&2
    exit 2
    ;;
esac
