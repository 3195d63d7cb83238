#!/usr/bin/env bash
# Run the platform in the foreground: the API (gunicorn), an RQ worker and RQ's cron scheduler.
# SIGINT (Ctrl-C) or SIGTERM stops all three. Used by `make run` and `make demo`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
eval "$(deploy/local/stack.sh env)"
export PORT=${PORT:-8000}
VENV=${VENV:-$ROOT/.venv}
pids=()

stop() {
  trap - INT TERM EXIT
  echo
  echo "stopping the API, the worker and the scheduler..."
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  echo "stopped (PostgreSQL and Redis keep running: 'make down' stops them)"
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

"$VENV/bin/gunicorn" --config deploy/gunicorn.conf.py backend.wsgi:app &
pids+=($!)
"$VENV/bin/python" -m worker &
pids+=($!)
"$VENV/bin/python" -m worker.scheduler &
pids+=($!)

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
# Whichever child exits first (or a signal) ends the run.
wait -n "${pids[@]}"
