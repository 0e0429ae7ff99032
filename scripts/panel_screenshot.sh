#!/usr/bin/env bash
# Screenshots of the FlowVQ panel in a Blender 4.2+ with a window: docs/images/panel_generating.png
# (Generate running) and docs/images/panel.png (two takes keyed). Needs a running `flowvq serve`
# (FLOWVQ_SERVER, default http://127.0.0.1:8765), the extension zip (`flowvq build-addon`), the demo's
# portrait (out/portrait.png, from scripts/demo.sh), ImageMagick's `import`, and Xvfb when DISPLAY is
# unset. BLENDER names the Blender command (default: blender). Blender's user folders go to a
# temporary folder, so the machine's Blender configuration is never touched. How the README's
# screenshots were made on a machine without a desktop: docs/addon.md, "Panel screenshots".
# With FLOWVQ_CHARACTER=some.glb (and FLOWVQ_HEAD, its head mesh, default Wolf3D_Head) it drives that
# character instead and writes character_generating.png and character.png.
# Usage: scripts/panel_screenshot.sh ZIP [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
zip=$(realpath "${1:?usage: scripts/panel_screenshot.sh ZIP [OUT_DIR]}")
out=$(realpath -m "${2:-docs/images}")
[ -f out/portrait.png ] || { echo "out/portrait.png is missing: run bash scripts/demo.sh first" >&2; exit 2; }
portrait=$(realpath out/portrait.png)
blender=${BLENDER:-blender}
tmp=$(mktemp -d)
xvfb=""
trap '[ -n "$xvfb" ] && kill "$xvfb"; rm -rf "$tmp"' EXIT
export BLENDER_USER_RESOURCES="$tmp/blender" XDG_CACHE_HOME="$tmp/cache"
# a start file and preferences without the splash screen, which would cover the viewport
$blender -b --python-expr "import bpy, sys; bpy.context.preferences.view.show_splash = False; \
bpy.ops.wm.save_userpref(); bpy.ops.wm.save_as_mainfile(filepath=sys.argv[-1])" -- "$tmp/start.blend" >/dev/null
if [ -z "${DISPLAY:-}" ]; then
  Xvfb :97 -screen 0 1920x1200x24 >"$tmp/xvfb.log" 2>&1 &
  xvfb=$!
  export DISPLAY=:97
  sleep 2
fi
if [ -n "${FLOWVQ_CHARACTER:-}" ]; then
  shots=(--running "$out/character_generating.png" --done "$out/character.png"
         --character "$(realpath "$FLOWVQ_CHARACTER")" --head "${FLOWVQ_HEAD:-Wolf3D_Head}")
else
  shots=(--running "$out/panel_generating.png" --done "$out/panel.png")
fi
$blender "$tmp/start.blend" --python scripts/panel_screenshot.py -- --zip "$zip" \
  --server "${FLOWVQ_SERVER:-http://127.0.0.1:8765}" --audio "$PWD/core/assets/demo_speech.wav" \
  --portrait "$portrait" "${shots[@]}"
