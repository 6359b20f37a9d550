#!/usr/bin/env bash
# The grounded model's contact sheet: 16 held-out world samples (`mmgen world sample
# --split heldout --seed 11`), caption i drawn by `mmgen generate --seed i` in the
# top two rows and the world's own render of that sample below, 4x upscaled.
# Needs python3 with Pillow (pip install pillow).
#   scripts/grounded-sheet.sh [MMGEN_BINARY] [OUT_PNG]
set -euo pipefail
mmgen=${1:-target/release/mmgen}
out=${2:-docs/grounded-sheet.png}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$mmgen" world sample --n 16 --split heldout --seed 11 --out "$work/world" >/dev/null
for i in $(seq 0 15); do
  id=$(printf '%06d' "$i")
  caption=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["caption"])' "$work/world/$id.json")
  "$mmgen" generate "$caption" --modalities image --seed "$i" --no-cache --out "$work/gen/$id" 2>/dev/null
  echo "$((i + 1)). $caption"
done
python3 - "$work" "$out" <<'PY'
import sys
from PIL import Image
work, out = sys.argv[1], sys.argv[2]
scale, gap, cols = 4, 4, 8
tiles = [f"{work}/gen/{i:06d}/image.png" for i in range(16)] + [f"{work}/world/{i:06d}.png" for i in range(16)]
first = Image.open(tiles[0])
side = first.width * scale
sheet = Image.new("RGB", (cols * side + (cols - 1) * gap, 4 * side + 3 * gap + gap), "white")
for k, path in enumerate(tiles):
    row, col = divmod(k, cols)
    y = row * (side + gap) + (gap if row >= 2 else 0)
    sheet.paste(Image.open(path).convert("RGB").resize((side, side), Image.NEAREST), (col * (side + gap), y))
sheet.save(out)
PY
echo "wrote $out"
