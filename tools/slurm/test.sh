#!/usr/bin/env bash
# The Slurm test, run by .ci/run: a real one-node Slurm (tools/slurm/local_cluster.sh: munged,
# slurmctld, slurmd on localhost, no systemd) runs lmquant sweeps of a tiny model on the tiny
# fixture corpus as job arrays (tools/slurm/sweep.sbatch) and checks:
#   1. a 4-task array, then the merge as a dependent job (--dependency=afterok), gives records
#      equal to a single-process sweep's, cell for cell (same perplexities to the last digit);
#   2. a 2-task array with one task killed mid-run: the merge refuses, naming the missing cells
#      and the shard that owes them; resubmitting that array index alone fills them, and the
#      merge then equals the single-process sweep too. (The fixture's cells take milliseconds,
#      too fast to kill a task between two of them, so this case sweeps a 64-unit model on a
#      generated 100k-token corpus: about a second per cell.)
# The daemons are stopped at the end. Skips (exit 0, saying why) only where this machine cannot
# run them: not root, or the packages cannot be installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
skip() { echo "slurm test: SKIPPED: $*"; exit 0; }
fail() { echo "slurm test: FAILED: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "the Slurm daemons need root (run as root, e.g. in CI)"
tools/slurm/local_cluster.sh install || skip "could not install slurm-wlm and munge from Debian"
tools/slurm/local_cluster.sh check || skip "the Slurm daemons are not usable here"
[ -x /usr/bin/python3 ] || skip "/usr/bin/python3 (used to compare records) is missing"
tools/setup.sh --cli >/dev/null

tmp="$(mktemp -d /tmp/lmquant-slurm.XXXXXX)"
chmod 755 "$tmp"
cleanup() {
  tools/slurm/local_cluster.sh stop "$tmp/cluster" || true
  rm -rf "$tmp"
}
trap cleanup EXIT
SLURM_CONF="$(tools/slurm/local_cluster.sh start "$tmp/cluster")" ||
  fail "the local cluster did not start"
export SLURM_CONF
export LMQUANT="$root/build/lmquant"
t0=$(date +%s)

"$LMQUANT" train -q --corpus tests/data/tiny --emb 8 --hidden 8 --epochs 1 --threads 1 \
  --out "$tmp/tiny.lmq"
args=(-q --model "$tmp/tiny.lmq" --corpus "$root/tests/data/tiny" --split valid --bits 3,4
      --methods clip,ocs --clips max,mse --expand-ratios 0.05,0.1 --rounding nearest,gptq
      --calib-sequences 64)
cells="$("$LMQUANT" sweep "${args[@]}" --list | wc -l)"
echo "slurm test: a grid of $cells cells"
"$LMQUANT" sweep "${args[@]}" --threads 1 --out "$tmp/single.jsonl" >/dev/null

# Records equal cell for cell: every field but timings and the sweep tag (which shard ran it).
same() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys
def load(p):
    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k != "sweep" and not k.endswith("seconds")}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x
    return [strip(json.loads(l)) for l in open(p) if l.strip()]
a, b = load(sys.argv[1]), load(sys.argv[2])
if len(a) != len(b):
    sys.exit(f"{len(a)} records vs {len(b)}")
for x, y in zip(a, b):
    if x != y:
        keys = [k for k in x if x.get(k) != y.get(k)]
        sys.exit(f"{x['label']} differs from {y['label']} in {keys[:5]}")
print(f"{len(a)} records equal (the float model and {len(a) - 1} cells)")
PY
}

# 1. A 4-task array; the merge as a job that depends on it.
jid="$(sbatch --parsable --array=0-3 -o "$tmp/a4-%a.out" tools/slurm/sweep.sbatch 4 "${args[@]}" \
  --out "$tmp/a4.{shard}.jsonl")"
sbatch --wait --dependency="afterok:$jid" --kill-on-invalid-dep=yes -o "$tmp/merge4.out" \
  --wrap "$LMQUANT sweep merge $tmp/a4.shard-*-of-4.jsonl --out $tmp/a4.jsonl" >/dev/null ||
  { cat "$tmp"/a4-*.out "$tmp/merge4.out" >&2 || true; fail "the 4-task array or its merge failed"; }
cat "$tmp/merge4.out"
same "$tmp/single.jsonl" "$tmp/a4.jsonl" || fail "the merged 4-shard sweep differs from one process"
# Merging again (the merged file and its shards) changes nothing.
"$LMQUANT" sweep merge "$tmp/a4.jsonl" "$tmp"/a4.shard-*-of-4.jsonl --out "$tmp/again.jsonl" >/dev/null
cmp -s "$tmp/a4.jsonl" "$tmp/again.jsonl" || fail "merging the merged file again changed it"

# 2. A 2-task array of slower cells; task 1 is killed once it has written its float record and
#    one cell.
/usr/bin/python3 - "$tmp/syn" <<'PY'
import os, random, sys
r = random.Random(7)  # a Zipf-like stream over 2,000 words: ~100k valid tokens
words = ["w%d" % i for i in range(2000)]
weights = [1.0 / (i + 1) for i in range(2000)]
os.makedirs(sys.argv[1])
for split, lines in [("train", 3000), ("valid", 6000), ("test", 300)]:
    with open(os.path.join(sys.argv[1], split + ".txt"), "w") as f:
        for _ in range(lines):
            f.write(" " + " ".join(r.choices(words, weights, k=r.randint(3, 25))) + " \n")
PY
"$LMQUANT" train -q --corpus "$tmp/syn" --emb 64 --hidden 64 --epochs 1 --max-batches 20 \
  --threads 1 --out "$tmp/syn.lmq"
args=(-q --model "$tmp/syn.lmq" --corpus "$tmp/syn" --split valid --bits 3,4 --methods clip,ocs
      --clips max,mse --expand-ratios 0.05 --rounding nearest,gptq --calib-sequences 64)
cells="$("$LMQUANT" sweep "${args[@]}" --list | wc -l)"
"$LMQUANT" sweep "${args[@]}" --threads 1 --out "$tmp/single2.jsonl" >/dev/null
jid="$(sbatch --parsable --array=0-1 -o "$tmp/a2-%a.out" tools/slurm/sweep.sbatch 2 "${args[@]}" \
  --out "$tmp/a2.{shard}.jsonl")"
shard1="$tmp/a2.shard-1-of-2.jsonl"
killed=0
for _ in $(seq 1 1200); do
  if [ -f "$shard1" ] && [ "$(wc -l < "$shard1")" -ge 2 ]; then
    scancel "${jid}_1" && killed=1
    break
  fi
  sleep 0.05
done
[ "$killed" -eq 1 ] || fail "task 1 of the 2-task array never wrote a cell"
for _ in $(seq 1 600); do
  [ -z "$(squeue -h -j "$jid" 2>/dev/null)" ] && break
  sleep 0.2
done
done1="$(( $(wc -l < "$shard1") - 1 ))"
echo "slurm test: task 1 of 2 killed after $done1 of its $(( cells / 2 )) cells"
[ "$done1" -lt $(( cells / 2 )) ] || fail "task 1 finished before it was killed: make its cells slower"
if "$LMQUANT" sweep merge "$tmp"/a2.shard-*-of-2.jsonl --out "$tmp/a2.jsonl" 2> "$tmp/refusal.txt"; then
  fail "the merge accepted a sweep with missing cells"
fi
cat "$tmp/refusal.txt"
grep -q "missing cell .*owed by shard 1/2" "$tmp/refusal.txt" || fail "the refusal does not name the missing cells"
if grep -q "owed by shard 0/2" "$tmp/refusal.txt"; then fail "shard 0 was not killed but owes cells"; fi
[ ! -e "$tmp/a2.jsonl" ] || fail "the refused merge wrote a file"
# Resubmit index 1 alone: it resumes its shard.
sbatch --wait --array=1 -o "$tmp/a2-again.out" tools/slurm/sweep.sbatch 2 "${args[@]}" \
  --out "$tmp/a2.{shard}.jsonl" >/dev/null || { cat "$tmp/a2-again.out" >&2; fail "the resubmitted task failed"; }
"$LMQUANT" sweep merge "$tmp"/a2.shard-*-of-2.jsonl --out "$tmp/a2.jsonl"
same "$tmp/single2.jsonl" "$tmp/a2.jsonl" || fail "the resumed 2-shard sweep differs from one process"
echo "slurm test: passed in $(( $(date +%s) - t0 )) s"
