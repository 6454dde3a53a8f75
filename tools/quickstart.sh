#!/usr/bin/env bash
# The main job: each quick-start trains and evaluates on a small generated data set (no
# download) and writes its results under output/quickstart/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=.venv/bin/python
ran=0
for script in tools/quickstart_detection.py tools/quickstart_pose.py \
    tools/quickstart_segmentation.py; do
  if [ -f "$script" ]; then
    echo "==> $script"
    "$PY" "$script" "$@"
    ran=1
  fi
done
[ "$ran" = 1 ] || { echo "no quick-start is available yet" >&2; exit 1; }
