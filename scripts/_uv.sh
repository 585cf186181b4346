# Sourced by scripts/serve and scripts/test: puts a working `uv` in $UV.
# uv installs the locked dependencies (uv.lock) into .venv; it comes from PyPI, so a fresh
# machine needs only python3 (>= 3.11) with venv and pip.
if command -v uv >/dev/null 2>&1; then
  UV=uv
elif [ -x .tools/bin/uv ]; then
  UV=.tools/bin/uv
else
  echo "bootstrapping uv into .tools/ ..." >&2
  python3 -m venv .tools && .tools/bin/pip install --quiet --disable-pip-version-check uv
  UV=.tools/bin/uv
fi
export UV
