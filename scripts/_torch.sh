# Sourced by scripts/test: installs PyTorch's CPU build for the optional LSTM model (issue 7) into
# .venv after `uv sync`. It is not in uv.lock on purpose: locking torch from PyPI pulls several GB
# of CUDA wheels on Linux. A local wheel directory (PIP_FIND_LINKS, as on the CI machines) is
# tried first, then PyTorch's CPU index. If neither works, the LSTM tests skip; nothing else needs it.
TORCH_VERSION="${ALGO_TORCH_VERSION:-2.13.0}"
if [ -n "${PIP_FIND_LINKS:-}" ] && "$UV" pip install --quiet --find-links "$PIP_FIND_LINKS" \
    "torch==${TORCH_VERSION}" 2>/dev/null; then
  :
elif "$UV" pip install --quiet --extra-index-url https://download.pytorch.org/whl/cpu \
    "torch==${TORCH_VERSION}+cpu" 2>/dev/null; then
  :
else
  echo "PyTorch ${TORCH_VERSION} (CPU) could not be installed; the LSTM tests will skip" >&2
fi
