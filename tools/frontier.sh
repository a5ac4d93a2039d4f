#!/usr/bin/env bash
# The size/quality frontier of a model: for each size T (bits per weight, as records count them),
# the round-four recipe (gptq, mse, float16 row steps, midrise grid, rows of the embedding and
# decoder at 1,2,3,4,7 bits with the row budget solved for T, rotated, the decoder against the
# output distribution, the embedding against what it feeds; on a tied model both are the tied
# objective) with W_ih/W_hh at 3, 4 or 5 bits: the candidates measured on the first 50,000
# valid tokens, the best one chosen there, then reported on test (Δ vs float with its 95%
# interval, KL and top-1 agreement). Choose on valid, report on test.
#   tools/frontier.sh MODEL OUT_DIR [T...]      (default T: 1.5 2.0 2.5 3.2)
# Environment: LMQUANT (default build/lmquant), THREADS (default 2), CORPUS_ARGS, LSTM_BITS
# (the W_ih/W_hh candidates, default 3,4,5), ROW_WIDTHS (the vocabulary rows' width set, default
# 1,2,3,4,7), EXTRA (flags added to the recipe, e.g. --refit-decoder-bias). Rerunning resumes:
# finished candidates are kept, and the test record is redone only when the choice changed.
# Writes OUT_DIR/select-T.jsonl (the candidates on valid) and OUT_DIR/test-T.json (the chosen one
# on test), then prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
model=$1
out=$2
shift 2
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1.5 2.0 2.5 3.2)
lmq=${LMQUANT:-build/lmquant}
lstm_bits=${LSTM_BITS:-3,4,5}
threads=${THREADS:-2}
corpus=${CORPUS_ARGS:-"--corpus wikitext2"}
mkdir -p "$out"
recipe="--methods clip --clips mse --granularity row --rounding gptq --grid midrise --half-scales
  --row-widths ${ROW_WIDTHS:-1,2,3,4,7} --rotate --fisher-decoder --gptq-embedding ${EXTRA:-}"
for t in "${sizes[@]}"; do
  # shellcheck disable=SC2086
  "$lmq" sweep -q --model "$model" $corpus --split valid --first-tokens 50000 --no-kl \
    --threads "$threads" --bits "$lstm_bits" $recipe --bits-per-weight "$t" --out "$out/select-$t.jsonl" \
    >/dev/null
  bits=$(/usr/bin/python3 -c "import json,sys
cells = [json.loads(l) for l in open(sys.argv[1])]
cells = [c for c in cells if c['config']['method'] != 'float']
print(min(cells, key=lambda c: c['perplexity'])['config']['bits'])" "$out/select-$t.jsonl")
  if [ -s "$out/test-$t.json" ] && [ "$(/usr/bin/python3 -c "import json,sys
print(json.load(open(sys.argv[1]))['config']['bits'])" "$out/test-$t.json")" = "$bits" ]; then
    continue
  fi
  # shellcheck disable=SC2086
  "$lmq" quantize -q --model "$model" $corpus --split test --json --threads "$threads" \
    --bits "$bits" ${recipe//--methods clip --clips mse/--clip mse} --bits-per-weight "$t" \
    > "$out/test-$t.json.tmp"
  mv "$out/test-$t.json.tmp" "$out/test-$t.json"
done
/usr/bin/python3 - "$out" "${sizes[@]}" <<'EOF'
import json, sys
out, sizes = sys.argv[1], sys.argv[2:]
print("| T | achieved | W_ih/W_hh bits | valid[:50k] by W_ih/W_hh bits | test perplexity | Δ vs float [95% CI] | KL to float [95% CI] | top-1 |")
print("|---|---|---|---|---|---|---|---|")
for t in sizes:
    sel = [json.loads(l) for l in open("%s/select-%s.jsonl" % (out, t))]
    by_bits = {c["config"]["bits"]: c["perplexity"] for c in sel if c["config"]["method"] != "float"}
    r = json.load(open("%s/test-%s.json" % (out, t)))
    k, a = r["kl_to_float"], r["top1_agreement"]
    cand = " / ".join("%d b %.2f" % (b, by_bits[b]) for b in sorted(by_bits))
    print("| %s | %.4f | %d | %s | %.2f | %+.2f%% [%+.2f, %+.2f] | %.4f [%.4f, %.4f] | %.1f%% |" % (
        t, r["size_bits"] / r["params_before"], r["config"]["bits"], cand, r["perplexity"], r["delta_pct"], r["ci_low"], r["ci_high"],
        k["mean"], k["ci_low"], k["ci_high"], 100 * a["mean"]))
print("float: test %.2f" % json.load(open("%s/test-%s.json" % (out, sizes[0])))["float_perplexity"])
EOF
