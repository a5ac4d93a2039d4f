#!/usr/bin/env node
// Sentence scores of an lmquant ONNX export in ONNX Runtime, as `lmquant score` computes them
// (lm/score.h): each sentence from a fresh state, inputs <eos> w1..wn, targets w1..wn <eos>;
// `batch` sentences per run, padded with <eos> (padding scored by nothing).
//
//   node tools/onnx/ort_score.js MODEL.onnx SENTENCES.json [--batch 32] [--threads 0]
//
// SENTENCES.json: {"eos": ID, "sentences": [[ids...], ...]}. Prints one JSON object: logprobs
// (Σ log p per sentence), seconds (the runs and their gathers), onnxruntime (its version).
// tools/bench_score.py runs it; needs onnxruntime-node (tools/setup.sh; NODE_PATH finds it).
'use strict';
const fs = require('fs');
const {fail, parseArgs, loadOrt, openExport} = require('./ort_common');

async function main() {
  const {files, opts} = parseArgs(process.argv.slice(2), {batch: 32, threads: 0}, 2,
                                  'ort_score.js MODEL.onnx SENTENCES.json [--batch B] [--threads N]');
  const ort = loadOrt();
  const input = JSON.parse(fs.readFileSync(files[1], 'utf8'));
  const eos = BigInt(input.eos), sentences = input.sentences;
  const {session, L, H} = await openExport(ort, files[0], opts.threads);
  const logprobs = [];
  let seconds = 0;
  for (let b0 = 0; b0 < sentences.length; b0 += opts.batch) {
    const group = sentences.slice(b0, b0 + opts.batch), B = group.length;
    const n = Math.max(...group.map((s) => s.length)) + 1;
    const x = new BigInt64Array(n * B).fill(eos);
    for (let j = 0; j < B; ++j)
      for (let t = 0; t < group[j].length; ++t) x[(t + 1) * B + j] = BigInt(group[j][t]);
    const zeros = () => new ort.Tensor('float32', new Float32Array(L * B * H), [L, B, H]);
    const t0 = process.hrtime.bigint();
    const out = await session.run({tokens: new ort.Tensor('int64', x, [n, B]), h0: zeros(), c0: zeros()});
    const lp = out.logprobs.data, V = out.logprobs.dims[2];
    for (let j = 0; j < B; ++j) {
      let sum = 0;
      const s = group[j];
      for (let t = 0; t <= s.length; ++t) {
        const target = t < s.length ? s[t] : Number(eos);
        sum += lp[(t * B + j) * V + target];
      }
      logprobs.push(sum);
    }
    seconds += Number(process.hrtime.bigint() - t0) / 1e9;
  }
  process.stdout.write(JSON.stringify({logprobs, seconds, onnxruntime: ort.env.versions ? ort.env.versions.common : ''}) + '\n');
}

main().catch((e) => fail(String(e && e.message ? e.message : e)));
