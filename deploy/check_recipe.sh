#!/usr/bin/env bash
# Runs the commands of deploy/Dockerfile in a clean virtual environment (no Docker needed), then starts the
# server on 127.0.0.1 for a few seconds and checks that it answers. Usage: bash deploy/check_recipe.sh [VENV]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-$(mktemp -d)/venv}
python3.11 -m venv "$VENV"
PY="$VENV/bin/python"
# The Dockerfile's RUN lines, in order:
"$PY" -m pip install --quiet --upgrade "pip==26.3" && "$PY" -m pip install --quiet -r requirements/lock.txt
BUILD=$(mktemp -d) && cp -r pyproject.toml README.md deepjet_nb "$BUILD"/
(cd "$BUILD" && "$PY" -m pip install --quiet --no-deps . && "$VENV/bin/deepjet-nb" serve --help > /dev/null)
# The CMD, on an empty model folder and loopback ports:
MODELS=$(mktemp -d)
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
GRPC=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$BUILD" && exec "$VENV/bin/deepjet-nb" serve --models "$MODELS" --host 127.0.0.1 --http-port "$PORT" \
    --grpc-port "$GRPC") > "$BUILD/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 60); do
    if "$PY" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/v2/health/live', timeout=1)" \
            2>/dev/null; then
        echo "check_recipe: the image's commands work: deepjet-nb serve answers on 127.0.0.1:$PORT"
        exit 0
    fi
    sleep 1
done
echo "check_recipe: the server did not answer; its log:" >&2
cat "$BUILD/server.log" >&2
exit 1
