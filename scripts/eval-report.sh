#!/usr/bin/env bash
# Runs `mmgen eval` for every task, split and language with the oracle and the random
# generator (and, for video, the morph control), and prints the tables of docs/evaluation.md (markdown). Needs python3 for formatting.
#   scripts/eval-report.sh [MMGEN_BINARY] [N] [TASKS]     (TASKS default "image video audio")
set -euo pipefail
MMGEN=${1:-target/release/mmgen}
N=${2:-200}
TASKS=${3:-image video audio}
for task in $TASKS; do
  n=$N; [ "$task" = video ] && n=$((N / 2))
  echo "### $task ($n prompts per row)"
  echo
  echo "| source | split | lang | overall | world-FD | categories |"
  echo "|---|---|---|---|---|---|"
  sources="oracle random"; [ "$task" = video ] && sources="$sources morph"
  for source in $sources; do
    for split in train heldout; do
      for lang in en zh; do
        "$MMGEN" eval --task "$task" --source "$source" --split "$split" --lang "$lang" --n "$n" --json 2>/dev/null |
          python3 -c "
import json, sys
r = json.load(sys.stdin)
cats = ' | '.join(f'{k} {v[\"score\"]:.3f}' for k, v in r['categories'].items())
print(f'| $source | $split | $lang | {r[\"overall\"]:.3f} | {r[\"world_fd\"]:.3f} | {cats} |')"
      done
    done
  done
  echo
done
