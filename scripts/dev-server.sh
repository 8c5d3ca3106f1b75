#!/usr/bin/env bash
# Start (or stop) a local Temporal dev server for Weaver, with the Web UI.
#
#   scripts/dev-server.sh          start in the background unless something
#                                  already listens on the port; wait until healthy
#   scripts/dev-server.sh stop     stop the server this script started
#   scripts/dev-server.sh status   say whether it runs
#
# Address from TEMPORAL_ADDRESS (host:port, default localhost:7233); the Web UI
# listens on port+1000 (8233 by default; override with TEMPORAL_UI_PORT).
# State persists in .weaver/temporal.db, so runs survive a restart. Logs go to
# .weaver/temporal-server.log and the pid to .weaver/temporal-server.pid.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd -- "$SCRIPT_DIR/.." && pwd -P)"
STATE_DIR="$ROOT/.weaver"
DB_FILE="$STATE_DIR/temporal.db"
LOG_FILE="$STATE_DIR/temporal-server.log"
PID_FILE="$STATE_DIR/temporal-server.pid"
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"

# Weaver's search attributes (name=type), registered at start.
SEARCH_ATTRIBUTES=(
  WeaverStatus=Keyword
  WeaverPhase=Keyword
  WeaverRepo=Keyword
  WeaverCostUsd=Double
  WeaverAttempt=Int
)

log() { printf 'dev-server: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

ADDRESS="${TEMPORAL_ADDRESS:-localhost:7233}"
HOST="${ADDRESS%:*}"
PORT="${ADDRESS##*:}"
if [ "$HOST" = "$ADDRESS" ] || [ -z "$HOST" ]; then HOST=localhost; fi
case "$PORT" in ''|*[!0-9]*) die "TEMPORAL_ADDRESS must be host:port (got '$ADDRESS')" ;; esac
UI_PORT="${TEMPORAL_UI_PORT:-$((PORT + 1000))}"
UI_URL="http://${HOST}:${UI_PORT}"

listening() { # $1 host, $2 port
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

our_pid() { # prints the pid if the pid file names a live process
  local pid
  [ -f "$PID_FILE" ] || return 1
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  case "$pid" in ''|*[!0-9]*) return 1 ;; esac
  kill -0 "$pid" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

cmd_stop() {
  local pid i
  if ! pid="$(our_pid)"; then
    rm -f "$PID_FILE"
    log "no dev server started by this script is running."
    return 0
  fi
  log "stopping Temporal dev server (pid $pid) ..."
  # It runs in its own process group (setsid): signal the whole group.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "still running after 10s; sending SIGKILL."
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PID_FILE"
  log "stopped."
}

cmd_status() {
  local pid
  if pid="$(our_pid)"; then
    log "running (pid $pid) at $HOST:$PORT; Web UI: $UI_URL"
  elif listening "$HOST" "$PORT"; then
    log "something (not started by this script) listens on $HOST:$PORT."
  else
    log "not running."
    return 1
  fi
}

healthy() {
  "$TEMPORAL" operator cluster health --address "$HOST:$PORT" >/dev/null 2>&1
}

ensure_search_attributes() {
  # start-dev registers them only when it creates the namespace; an older
  # .weaver/temporal.db may lack some, so add whichever are missing.
  local existing sa name type
  existing="$("$TEMPORAL" operator search-attribute list --address "$HOST:$PORT" --namespace "$NAMESPACE" 2>/dev/null || true)"
  for sa in "${SEARCH_ATTRIBUTES[@]}"; do
    name="${sa%%=*}"; type="${sa#*=}"
    if ! grep -qw -- "$name" <<<"$existing"; then
      log "registering search attribute $name ($type)"
      "$TEMPORAL" operator search-attribute create --address "$HOST:$PORT" --namespace "$NAMESPACE" \
        --name "$name" --type "$type" >&2 || log "warning: could not register $name"
    fi
  done
}

cmd_start() {
  local pid args sa i
  if pid="$(our_pid)"; then
    log "already running (pid $pid) at $HOST:$PORT."
    log "Web UI: $UI_URL"
    printf '%s\n' "$UI_URL"
    return 0
  fi
  if listening "$HOST" "$PORT"; then
    log "something already listens on $HOST:$PORT; not starting another server (already running?)."
    log "Web UI (if it is a dev server): $UI_URL"
    printf '%s\n' "$UI_URL"
    return 0
  fi

  TEMPORAL="$(bash "$SCRIPT_DIR/temporal-cli.sh")" || die "no Temporal CLI (see above)."
  mkdir -p "$STATE_DIR"

  args=(server start-dev
    --ip "$HOST" --port "$PORT" --ui-port "$UI_PORT"
    --db-filename "$DB_FILE"
    --namespace "$NAMESPACE"
    --log-format text --log-level "${TEMPORAL_LOG_LEVEL:-warn}")
  for sa in "${SEARCH_ATTRIBUTES[@]}"; do args+=(--search-attribute "$sa"); done

  log "starting: $TEMPORAL ${args[*]}"
  printf '\n=== %s: starting %s %s\n' "$(date -u +%FT%TZ)" "$TEMPORAL" "${args[*]}" >>"$LOG_FILE"
  # setsid: own session and process group, detached from this shell, so
  # `stop` can signal the group and closing the terminal does not kill it.
  if command -v setsid >/dev/null 2>&1; then
    setsid "$TEMPORAL" "${args[@]}" </dev/null >>"$LOG_FILE" 2>&1 &
  else
    nohup "$TEMPORAL" "${args[@]}" </dev/null >>"$LOG_FILE" 2>&1 &
  fi
  pid=$!
  printf '%s\n' "$pid" >"$PID_FILE"

  for i in $(seq 1 240); do # up to 60s
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      log "the server exited during startup; last lines of $LOG_FILE:"
      tail -n 20 "$LOG_FILE" >&2
      exit 1
    fi
    if healthy; then break; fi
    sleep 0.25
  done
  healthy || { log "server did not become healthy within 60s; see $LOG_FILE"; cmd_stop; exit 1; }

  ensure_search_attributes
  log "Temporal dev server running (pid $pid) at $HOST:$PORT, namespace $NAMESPACE"
  log "state: $DB_FILE   log: $LOG_FILE"
  log "Web UI: $UI_URL"
  printf '%s\n' "$UI_URL"
}

case "${1:-start}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  -h|--help|help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "usage: $0 [start|stop|status]" ;;
esac
