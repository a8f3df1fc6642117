#!/usr/bin/env bash
# Creates (or refreshes) the two Python 3.10 environments from the pinned lock files.
# Re-running is fast and changes nothing while the lock files are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python310() {
  if command -v python3.10 >/dev/null 2>&1 && python3.10 -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
    command -v python3.10; return
  fi
  local root candidate
  root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  for candidate in "$root"/versions/3.10.*/bin/python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do
    if [ -x "$candidate" ]; then echo "$candidate"; return; fi
  done
  echo "error: Python 3.10 not found (install it, e.g. 'pyenv install 3.10.13')" >&2
  exit 1
}

# make_env DIR STAMP_INPUTS... -- INSTALL_ARGS...
make_env() {
  local dir=$1; shift
  local inputs=() ; while [ "$1" != "--" ]; do inputs+=("$1"); shift; done; shift
  local want; want=$(cat "${inputs[@]}" | sha256sum | cut -d' ' -f1)
  if [ -f "$dir/.abono-stamp" ] && [ "$(cat "$dir/.abono-stamp")" = "$want" ] && [ -x "$dir/bin/python" ]; then
    echo "$dir is current"; return
  fi
  echo "setting up $dir (a few minutes the first time)…"
  [ -x "$dir/bin/python" ] || "$PY" -m venv "$dir"
  # Only pip itself: the lock files pin everything else (rasa needs an old `packaging`).
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "pip==24.0"
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
  echo "$want" > "$dir/.abono-stamp"
}

PY=$(find_python310)
make_env .venv-engine requirements/engine.lock -- -r requirements/engine.lock
make_env .venv-app requirements/app.lock pyproject.toml -- -r requirements/app.lock
# The project itself, editable, so its entry points (channels, actions, babel) register.
if [ ! -f .venv-app/.abono-project ] || [ pyproject.toml -nt .venv-app/.abono-project ]; then
  .venv-app/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
  touch .venv-app/.abono-project
fi
