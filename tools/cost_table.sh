#!/usr/bin/env bash
# The cost of each quantization method on a model: wall time and peak resident memory of one
# quantization (a one-cell sweep evaluating only the first 3,500 valid tokens, no KL, so that
# the evaluation is a small part), measured with /usr/bin/time -v, as a Markdown table.
#   tools/cost_table.sh MODEL [METHOD...]       (methods: all by default)
# Environment: LMQUANT (default build/lmquant), THREADS (default 2), CORPUS_ARGS (default
# "--corpus wikitext2"), TIED=1 to label the Fisher rows as the tied objective.
# The quantization alone is the record's quantize_seconds; wall includes loading the model,
# the corpus and the small evaluation.
set -euo pipefail
cd "$(dirname "$0")/.."
model=$1
shift
lmq=${LMQUANT:-build/lmquant}
threads=${THREADS:-2}
corpus=${CORPUS_ARGS:-"--corpus wikitext2"}
methods=("$@")
[ ${#methods[@]} -gt 0 ] || methods=(nearest gptq ocs rows rotate fisher round4)
declare -A flags=(
  [nearest]="--bits 4 --methods clip --clips mse --granularity row"
  [gptq]="--bits 4 --methods clip --clips mse --granularity row --rounding gptq"
  [ocs]="--bits 4 --methods ocs --clips max --expand-ratios 0.02 --granularity tensor"
  [rows]="--bits 4 --methods clip --clips mse --granularity row --grid midrise --row-widths 1,2,3,4,7 --bits-per-weight 2.5"
  [rotate]="--bits 4 --methods clip --clips mse --granularity row --rotate"
  [fisher]="--bits 4 --methods clip --clips mse --granularity row --rounding gptq --fisher-decoder"
  [round4]="--bits 5 --methods clip --clips mse --granularity row --rounding gptq --grid midrise --half-scales --row-widths 1,2,3,4,7 --bits-per-weight 2.5 --rotate --fisher-decoder"
)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "| method | quantize (s) | wall (s) | peak RSS (GiB) | label |"
echo "|---|---|---|---|---|"
for m in "${methods[@]}"; do
  [ -n "${flags[$m]:-}" ] || { echo "cost_table: unknown method $m" >&2; exit 2; }
  # shellcheck disable=SC2086
  /usr/bin/time -v "$lmq" sweep -q --model "$model" $corpus --split valid --first-tokens 3500 \
    --no-kl --threads "$threads" ${flags[$m]} --out "$tmp/$m.jsonl" >/dev/null 2>"$tmp/$m.time"
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$tmp/$m.time" |
         awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.2f", $2 / 1048576}' "$tmp/$m.time")
  q=$(/usr/bin/python3 -c "import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r['config']['method'] != 'float': print('%.1f\t%s' % (r['quantize_seconds'], r['label']))" "$tmp/$m.jsonl")
  name=$m
  [ "${TIED:-0}" = 1 ] && [ "$m" = fisher ] && name="fisher (tied objective)"
  printf "| %s | %s | %.0f | %s | %s |\n" "$name" "${q%%$'\t'*}" "$wall" "$rss" "${q#*$'\t'}"
done
