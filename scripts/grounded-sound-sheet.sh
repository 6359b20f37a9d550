#!/usr/bin/env bash
# The grounded sound's listening sheet: for each of the five instruments, the
# spectrogram of `mmgen generate "<mood> <instrument> music at 100 bpm" --modalities
# audio --seconds 6` beside the world's instruments playing the same score (`mmgen
# world play-score`). Rows: piano, strings, flute, pluck, drums; left generated,
# right world; 0-4 kHz, 6 s.
# Needs python3 with numpy and Pillow (pip install numpy pillow).
#   scripts/grounded-sound-sheet.sh [MMGEN_BINARY] [OUT_PNG] [WAV_FOLDER]
set -euo pipefail
mmgen=${1:-target/release/mmgen}
out=${2:-docs/grounded-sound-sheet.png}
work=${3:-$(mktemp -d)}
mkdir -p "$work"
i=0
for pair in "happy piano" "sad strings" "calm flute" "tense plucked strings" "happy drums"; do
  "$mmgen" generate "$pair music at 100 bpm" --modalities audio --seconds 6 --seed "$i" --no-cache --out "$work/gen-$i" 2>/dev/null
  "$mmgen" world play-score "$work/gen-$i/meta.json" --out "$work/world-$i.wav" 2>/dev/null
  python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(sys.argv[2], "->", json.dumps(m["sound_plan"]["music"]))' "$work/gen-$i/meta.json" "$pair"
  i=$((i + 1))
done
python3 - "$work" "$out" <<'PY'
import sys, wave
import numpy as np
from PIL import Image, ImageDraw
work, out = sys.argv[1], sys.argv[2]
def read(path):
    with wave.open(path) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768
    return x
def spectrogram(x, n=1024, hop=128, top_hz=4000, rate=16000):
    window = np.hanning(n)
    frames = [x[i:i + n] * window for i in range(0, len(x) - n, hop)]
    mag = np.abs(np.fft.rfft(np.array(frames), axis=1))[:, : int(top_hz * n / rate)]
    db = 20 * np.log10(mag + 1e-4)
    db = np.clip((db - db.max() + 70) / 70, 0, 1)
    return (255 * db.T[::-1]).astype(np.uint8)
import json
names = [json.load(open(f"{work}/gen-{i}/meta.json"))["sound_plan"]["music"]["instrument"] for i in range(5)]
rows = []
for i, name in enumerate(names):
    made, real = spectrogram(read(f"{work}/gen-{i}/audio.wav")), spectrogram(read(f"{work}/world-{i}.wav"))
    gap = np.full((made.shape[0], 8), 255, np.uint8)
    rows.append(np.hstack([made, gap, real]))
    rows.append(np.full((18, rows[-1].shape[1]), 255, np.uint8))
sheet = Image.fromarray(np.vstack(rows))
draw = ImageDraw.Draw(sheet)
y = 0
for i, name in enumerate(names):
    y += rows[2 * i].shape[0]
    draw.text((4, y + 3), f"{name} (the plan's instrument): generated (left), world playing the same score (right)", fill=0)
    y += 18
sheet.save(out)
PY
echo "wrote $out"
