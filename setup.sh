#!/usr/bin/env bash
# Set up effdyn (with its test and documentation tools) in a virtual environment `.venv` at the
# checkout's root.
# Needs only python3 (>= 3.11). Run it again at will: it reuses .venv and reinstalls only
# when pyproject.toml has changed since the last install.
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  echo "effdyn setup: creating .venv with $($python --version 2>&1)" >&2
  "$python" -m venv .venv
fi

stamp=.venv/.effdyn-install-stamp
want=$(.venv/bin/python -c 'import hashlib,sys; print(hashlib.sha256(open("pyproject.toml","rb").read()).hexdigest())')
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -x .venv/bin/effdyn ]; then
  echo "effdyn setup: installing effdyn and its dependencies into .venv (a few minutes once)" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test,docs]"
  echo "$want" > "$stamp"
fi
