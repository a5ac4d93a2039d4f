#!/usr/bin/env bash
# A WikiText-103-sized vocabulary through eval, quantize and the int8 engine, with each step's
# peak RSS (/usr/bin/time -v) and wall time: the memory claim that no [N, V] logits are held.
#
# The corpus is synthetic (WikiText-103's files are not on this machine): VOCAB distinct words
# (267,735 by default, WikiText-103's), each in train at least once, then Zipf-distributed text;
# valid and test TOKENS tokens each. The model is random (weights do not change the cost) in
# fastai's WikiText-103 AWD_LSTM shapes: embedding 400, layers 1152 -> 1152 -> 400, tied; made by
# `lmquant train --max-batches 1`.
#
#   tools/bench_large_vocab.sh [OUT_DIR] [VOCAB] [TOKENS]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/lmquant-large-vocab}
vocab=${2:-267735}
tokens=${3:-20000}
lmq=${LMQUANT:-build/lmquant}
mkdir -p "$out/corpus"
/usr/bin/python3 - "$out/corpus" "$vocab" "$tokens" <<'EOF'
import random, sys
d, V, T = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(7)
words = ["w%d" % i for i in range(V - 2)] + ["<unk>"]  # + <eos>: V in all
weights = [1.0 / (r + 1) for r in range(len(words))]
def lines(n):
    out, left = [], n
    while left > 0:
        k = min(left, rng.randint(5, 30))
        out.append(" ".join(rng.choices(words, weights, k=k)))
        left -= k + 1
    return "\n".join(out) + "\n"
with open(d + "/train.txt", "w") as f:
    for i in range(0, len(words), 20):
        f.write(" ".join(words[i:i + 20]) + "\n")
    f.write(lines(T))
for split in ("valid", "test"):
    with open("%s/%s.txt" % (d, split), "w") as f:
        f.write(lines(T))
EOF
measure() {  # name, command...: prints name, wall seconds, peak RSS (MiB)
  local name=$1
  shift
  /usr/bin/time -v "$@" >"$out/$name.out" 2>"$out/$name.time"
  local rss wall
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$out/$name.time")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$out/$name.time")
  printf '%-28s wall %-9s peak RSS %6s MiB\n' "$name" "$wall" "$rss"
}
"$lmq" train -q --corpus "$out/corpus" --emb 400 --layer-hidden 1152,1152,400 --tied \
  --epochs 1 --max-batches 1 --out "$out/model.lmq" >/dev/null
"$lmq" corpus --corpus "$out/corpus" --json | /usr/bin/python3 -c \
  'import json,sys; d=json.load(sys.stdin); print("corpus: vocabulary %d, test %d tokens" % (d["vocab"], d["test_tokens"]))'
measure "eval (float)" "$lmq" eval -q --model "$out/model.lmq" --corpus "$out/corpus" --json
measure "quantize 4b mse row + pack" "$lmq" quantize -q --model "$out/model.lmq" \
  --corpus "$out/corpus" --bits 4 --clip mse --granularity row --no-kl \
  --save-packed "$out/model.4b.lmq"
measure "eval (int8 engine)" "$lmq" eval -q --model "$out/model.4b.lmq" --engine int8 \
  --corpus "$out/corpus" --json
for f in "eval (float)" "eval (int8 engine)"; do
  /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%s: perplexity %.1f, %d tokens, %.0f tok/s" % (sys.argv[2], d["perplexity"], d["tokens"], d["tokens_per_s"]))' "$out/$f.out" "$f"
done
ls -l "$out/model.lmq" "$out/model.4b.lmq" | awk '{printf "%s %.0f MiB\n", $9, $5 / 1048576}'
