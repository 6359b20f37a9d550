#!/usr/bin/env bash
# The grounded model's video contact sheet: 8 held-out world clips (`mmgen world
# sample --split heldout --seed 11 --frames 24`), caption i drawn by `mmgen generate
# --modalities video --seed i`. Each row is one prompt: the generated frames 0, 8, 16
# and 23, then the world's own frames 0, 8, 16 and 23, 3x upscaled.
# Needs python3 with Pillow (pip install pillow).
#   scripts/grounded-video-sheet.sh [MMGEN_BINARY] [OUT_PNG]
set -euo pipefail
mmgen=${1:-target/release/mmgen}
out=${2:-docs/grounded-video-sheet.png}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$mmgen" world sample --n 8 --split heldout --seed 11 --frames 24 --out "$work/world" >/dev/null
for i in $(seq 0 7); do
  id=$(printf '%06d' "$i")
  caption=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["caption"])' "$work/world/$id.json")
  "$mmgen" generate "$caption" --modalities video --frames 24 --seed "$i" --no-cache --out "$work/gen/$id" 2>/dev/null
  echo "$((i + 1)). $caption"
done
python3 - "$work" "$out" <<'PY'
import sys
from PIL import Image, ImageSequence
work, out = sys.argv[1], sys.argv[2]
scale, gap, picks = 3, 4, [0, 8, 16, 23]
def frames(path):
    return [f.convert("RGB") for f in ImageSequence.Iterator(Image.open(path))]
rows = [(frames(f"{work}/gen/{i:06d}/video.gif"), frames(f"{work}/world/{i:06d}.gif")) for i in range(8)]
side = rows[0][0][0].width * scale
width = 8 * side + 7 * gap + 3 * gap
sheet = Image.new("RGB", (width, 8 * side + 7 * gap), "white")
for r, (made, real) in enumerate(rows):
    for k, f in enumerate(picks):
        for half, clip in enumerate((made, real)):
            x = (4 * half + k) * (side + gap) + half * 3 * gap
            sheet.paste(clip[f].resize((side, side), Image.NEAREST), (x, r * (side + gap)))
sheet.save(out)
PY
echo "wrote $out"
