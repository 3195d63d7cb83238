#!/usr/bin/env bash
# Run the platform in the foreground: the API (gunicorn), an RQ worker and RQ's cron scheduler.
# Each is supervised: a child that dies (a crash, a SIGKILL, anything but this script's own stop) is
# started again after a back-off (1 s, doubling to 30 s; reset after a minute of running), with a log
# line. Only SIGINT (Ctrl-C) or SIGTERM to this script stops all three. Used by `make run` and `make demo`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
eval "$(deploy/local/stack.sh env)"
export PORT=${PORT:-8000}
VENV=${VENV:-$ROOT/.venv}
supervisors=()

say() { echo "serve: $(date -u +%H:%M:%S) $*" >&2; }

# supervise NAME COMMAND...: run COMMAND until this supervisor is told to stop, restarting it when it ends.
supervise() {
  local name=$1; shift
  local child="" stopping=0 delay=1 started rc
  trap 'stopping=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM INT
  while [ "$stopping" = 0 ]; do
    started=$SECONDS
    "$@" &
    child=$!
    # `wait` returns early when a signal arrives; wait again until the child has really ended.
    rc=0; wait "$child" || rc=$?
    while kill -0 "$child" 2>/dev/null; do wait "$child" || rc=$?; done
    child=""
    [ "$stopping" = 1 ] && break
    if (( SECONDS - started >= 60 )); then delay=1; fi
    say "$name exited (status $rc); restarting it in ${delay}s"
    sleep "$delay" & child=$!
    wait "$child" || true
    child=""
    delay=$(( delay * 2 > 30 ? 30 : delay * 2 ))
  done
  exit 0
}

stop() {
  trap - INT TERM EXIT
  echo
  echo "stopping the API, the worker and the scheduler..."
  kill -TERM "${supervisors[@]}" 2>/dev/null || true
  wait "${supervisors[@]}" 2>/dev/null || true
  echo "stopped (PostgreSQL and Redis keep running: 'make down' stops them)"
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

# Ctrl-C reaches the whole foreground process group; the children are stopped by their supervisors
# instead (a child started in the background by a non-interactive shell ignores SIGINT anyway).
supervise api "$VENV/bin/gunicorn" --config deploy/gunicorn.conf.py backend.wsgi:app &
supervisors+=($!)
supervise worker "$VENV/bin/python" -m worker &
supervisors+=($!)
supervise scheduler "$VENV/bin/python" -m worker.scheduler &
supervisors+=($!)

for _ in $(seq 100); do
  if curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; then break; fi
  sleep 0.2
done
cat <<MSG

  SafeTravel is running.
    App           http://127.0.0.1:$PORT/app/         (the commuter's app; development sign-in: automatic)
    Dashboard     http://127.0.0.1:$PORT/dashboard/   (development sign-in: pick a role)
    API docs      http://127.0.0.1:$PORT/api/docs
    OpenAPI       http://127.0.0.1:$PORT/api/openapi.json
    Health        http://127.0.0.1:$PORT/healthz   (readiness: /readyz)
    A token       $VENV/bin/safetravel dev-token --role safety_team
  Press Ctrl-C to stop.

MSG
# Runs until a signal (the supervisors never end by themselves).
wait "${supervisors[@]}" || true
