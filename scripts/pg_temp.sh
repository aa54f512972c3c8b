#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests: `eval "$(scripts/pg_temp.sh start)"` prints
# `export PLURALIGN_TEST_PG_URL=... PLURALIGN_PG_DIR=...`; `scripts/pg_temp.sh stop "$PLURALIGN_PG_DIR"`
# stops it and removes its folder. initdb refuses to run as root, so as root the cluster runs as
# the `postgres` user (created by Debian's postgresql package).
set -euo pipefail
BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$BIN/initdb" ] || BIN=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "${1:-}" in
  start)
    [ -x "$BIN/initdb" ] || { echo "no PostgreSQL binaries (apt-get install -y postgresql)" >&2; exit 1; }
    DIR=$(mktemp -d /tmp/pluralign-pg.XXXXXX)
    chmod 755 "$DIR"
    [ "$(id -u)" = 0 ] && chown postgres "$DIR"
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$BIN/initdb" -D "$DIR/data" -A trust -U postgres >"$DIR/initdb.log" 2>&1 \
      || { cat "$DIR/initdb.log" >&2; exit 1; }
    as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
      -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null \
      || { cat "$DIR/server.log" >&2; exit 1; }
    as_owner "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres pluralign
    echo "export PLURALIGN_TEST_PG_URL=postgresql://postgres@127.0.0.1:$PORT/pluralign PLURALIGN_PG_DIR=$DIR"
    ;;
  stop)
    DIR=${2:?usage: pg_temp.sh stop DIR}
    as_owner "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$DIR"
    ;;
  *) echo "usage: pg_temp.sh start | stop DIR" >&2; exit 2 ;;
esac
