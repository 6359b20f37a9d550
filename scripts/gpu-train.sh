#!/usr/bin/env bash
# Train models on a lent GPU machine within a wall-time budget, and bring back what
# fits through its output folder (at most 8 files of at most 16 MB each).
#
#   bash scripts/gpu-train.sh [--bin PATH] [--device cuda] [--out DIR] [--bench]
#                             [--resume] [--batch B] [--style-share STYLE=SHARE]
#                             [--spin-share SHARE] JOB[=MINUTES] ...
#
#   JOB      probe-image | probe-shape | probe-video | probe-audio | vae | text-image
#            | text-video | text-audio
#            text-image trains on the VAE of an earlier vae job of the same call, else
#            on models/vae; its tokenizer is models/hybrid-image/tokenizer.json, or one
#            trained on the spot. text-video inflates, and text-audio takes its text
#            encoder from, the text-image result of the same call, else
#            models/hybrid-image
#   MINUTES  training budget of that job (default 3); evaluation and export come on top
#   --bin    the CUDA build of mmgen (default gpu/mmgen; see README, "Training on a GPU")
#   --out    where results go (default $OUT, the device tool's output folder)
#   --bench  also write bench-train.json (`mmgen bench train`, every model)
#   --resume continue each job from its shipped weights in models/JOB
#   --batch  samples per step (default 128)
#   --style-share  probe-image and probe-shape jobs draw that share of their scenes in
#            one style (`mmgen train ... --style-share`, e.g. pixel_art=0.5)
#   --spin-share  probe-image and probe-shape jobs show that share of their scenes
#            turned (`mmgen train ... --spin-share`, e.g. 0.5)
#   --tiny   the tiny test configurations (to try this script on a CPU)
#
# Writes, under the output folder: NAME.tar per job, NAME its folder in models/
# (text-image -> hybrid-image, text-video -> hybrid-video, text-audio -> hybrid-audio) (config.json, model.safetensors,
# metrics.json with the loss curve and held-out accuracy), gpu-train.log (everything
# printed) and, with --bench, bench-train.json. A job cut off by an error still leaves
# its last two-minute checkpoint in its tar. Unpack with `tar -xf NAME.tar -C models/`.
set -uo pipefail

BIN=gpu/mmgen DEVICE=cuda OUTDIR="${OUT:-}" BENCH=0 RESUME=0 BATCH=128 TINY=0 STYLE_SHARE= SPIN_SHARE=
JOBS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN="$2"; shift 2 ;;
    --device) DEVICE="$2"; shift 2 ;;
    --out) OUTDIR="$2"; shift 2 ;;
    --batch) BATCH="$2"; shift 2 ;;
    --style-share) STYLE_SHARE="$2"; shift 2 ;;
    --spin-share) SPIN_SHARE="$2"; shift 2 ;;
    --bench) BENCH=1; shift ;;
    --resume) RESUME=1; shift ;;
    --tiny) TINY=1; shift ;;
    -h|--help) sed -n '2,/^set /{/^set /!p}' "$0"; exit 0 ;;
    -*) echo "gpu-train.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) case "${1%%=*}" in
         probe-image|probe-shape|probe-video|probe-audio|vae|text-image|text-video|text-audio) JOBS+=("$1"); shift ;;
         *) echo "gpu-train.sh: unknown job ${1%%=*}; allowed: probe-image, probe-shape, probe-video, probe-audio, vae, text-image, text-video, text-audio" >&2; exit 2 ;;
       esac ;;
  esac
done
[ -n "$OUTDIR" ] || { echo "gpu-train.sh: no output folder: set \$OUT or pass --out DIR" >&2; exit 2; }
[ -x "$BIN" ] || { echo "gpu-train.sh: $BIN is not an executable mmgen (pass --bin PATH)" >&2; exit 2; }
[ ${#JOBS[@]} -gt 0 ] || [ "$BENCH" = 1 ] || { echo "gpu-train.sh: nothing to do: name a JOB or --bench" >&2; exit 2; }
[ $(( ${#JOBS[@]} + 1 + BENCH )) -le 8 ] || { echo "gpu-train.sh: at most 6 jobs (8 files come back)" >&2; exit 2; }
mkdir -p "$OUTDIR"
LOG="$OUTDIR/gpu-train.log"
WORK=$(mktemp -d)

# The CUDA build loads libcublas & co. at run time: on the lent machine they come with
# its PyTorch.
if [ "$DEVICE" != cpu ]; then
  CUBLAS=$(find /opt /usr -name 'libcublas.so.13' -not -path '*/stubs/*' 2>/dev/null | head -n1)
  [ -n "$CUBLAS" ] && export LD_LIBRARY_PATH="$(dirname "$CUBLAS"):/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}"
  nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader >>"$LOG" 2>&1
fi
WORKERS=$(( $(nproc) > 2 ? $(nproc) - 1 : 1 ))
echo "gpu-train: device $DEVICE, $WORKERS data workers, jobs: ${JOBS[*]:-none}" | tee -a "$LOG"

STATUS=0
for spec in "${JOBS[@]}"; do
  job=${spec%%=*}
  minutes=3
  [ "$spec" != "$job" ] && minutes=${spec#*=}
  # Results are named as their folders in models/ (text-image -> hybrid-image).
  name=$job
  case "$job" in text-*) name=hybrid-${job#text-} ;; esac
  args=(train "$job" --device "$DEVICE" --max-minutes "$minutes" --steps 10000000 --batch "$BATCH"
        --workers "$WORKERS" --seed 11 --out "$WORK/$name" --eval-samples 2000)
  # A video model takes its shape from the image model it inflates.
  [ "$TINY" = 1 ] && [ "$job" != text-video ] && args+=(--tiny)
  shipped="models/$name"
  image_model=models/hybrid-image; [ -d "$WORK/hybrid-image" ] && image_model="$WORK/hybrid-image"
  [ "$job" = text-video ] && args+=(--image-model "$image_model")
  [ "$job" = text-audio ] && args+=(--tokenizer "$image_model/tokenizer.json" --text-from "$image_model")
  if [ "$job" = text-image ]; then
    vae=models/vae; [ -d "$WORK/vae" ] && vae="$WORK/vae"
    tok="$shipped/tokenizer.json"
    if [ ! -f "$tok" ]; then
      tok="$WORK/tokenizer.json"
      "$BIN" train tokenizer --out "$tok" >>"$LOG" 2>&1 || { echo "== tokenizer failed" | tee -a "$LOG"; STATUS=1; continue; }
    fi
    args+=(--vae "$vae" --tokenizer "$tok")
  fi
  case "$job" in probe-image|probe-shape)
    [ -n "$STYLE_SHARE" ] && args+=(--style-share "$STYLE_SHARE")
    [ -n "$SPIN_SHARE" ] && args+=(--spin-share "$SPIN_SHARE") ;;
  esac
  [ "$RESUME" = 1 ] && args+=(--resume "$shipped")
  echo "== $BIN ${args[*]}" | tee -a "$LOG"
  start=$(date +%s)
  "$BIN" "${args[@]}" >>"$LOG" 2>&1 || { echo "== $job failed (exit $?)" | tee -a "$LOG"; STATUS=1; }
  echo "== $job: $(( $(date +%s) - start )) s" | tee -a "$LOG"
  [ -d "$WORK/$name" ] && tar -cf "$OUTDIR/$name.tar" -C "$WORK" "$name"
done

if [ "$BENCH" = 1 ]; then
  echo "== $BIN bench train --device $DEVICE --json" | tee -a "$LOG"
  "$BIN" bench train --device "$DEVICE" --batch "$BATCH" --json >"$OUTDIR/bench-train.json" 2>>"$LOG" || STATUS=1
fi
rm -rf "$WORK"
tail -n 40 "$LOG"
exit $STATUS
