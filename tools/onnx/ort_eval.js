#!/usr/bin/env node
// Perplexity of an lmquant ONNX export (lmquant export --onnx) in ONNX Runtime, with
// pytorch/examples' evaluate() protocol, the one `lmquant eval` follows: the ids batchified into
// `batch` streams, chunks of `bptt` steps, the state carried from chunk to chunk, the mean
// negative log-likelihood over the (steps - 1) * batch targets.
//
//   node tools/onnx/ort_eval.js MODEL.onnx IDS.bin [--batch 10] [--bptt 35] [--threads 0]
//
// IDS.bin: int64 little-endian token ids (lmquant corpus --write-ids F --split test). Prints one
// JSON object: perplexity, loss, tokens, seconds (the chunks' inference only), tokens_per_s.
// Needs the npm package onnxruntime-node (tools/setup.sh installs it; NODE_PATH finds it).
'use strict';
const fs = require('fs');
const {fail, parseArgs, loadOrt, openExport} = require('./ort_common');

async function main() {
  const {files, opts} = parseArgs(process.argv.slice(2), {batch: 10, bptt: 35, threads: 0}, 2,
                                  'ort_eval.js MODEL.onnx IDS.bin [--batch B] [--bptt T] [--threads N]');
  const ort = loadOrt();
  const raw = fs.readFileSync(files[1]);
  if (raw.length % 8) fail(files[1] + ': not int64 token ids (size ' + raw.length + ')');
  const ids = new BigInt64Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
  const B = opts.batch, steps = Math.floor(ids.length / B);
  if (steps < 2) fail(files[1] + ': ' + ids.length + ' ids are too few for batch ' + B);
  const {session, L, H} = await openExport(ort, files[0], opts.threads);
  // pytorch/examples batchify: stream b is ids[b * steps ... (b + 1) * steps - 1].
  const at = (t, b) => ids[b * steps + t];
  let h = new ort.Tensor('float32', new Float32Array(L * B * H), [L, B, H]);
  let c = new ort.Tensor('float32', new Float32Array(L * B * H), [L, B, H]);
  let nll = 0, seconds = 0;
  for (let i = 0; i < steps - 1; i += opts.bptt) {
    const seq = Math.min(opts.bptt, steps - 1 - i);
    const x = new BigInt64Array(seq * B);
    for (let t = 0; t < seq; ++t) for (let b = 0; b < B; ++b) x[t * B + b] = at(i + t, b);
    const t0 = process.hrtime.bigint();
    const out = await session.run({tokens: new ort.Tensor('int64', x, [seq, B]), h0: h, c0: c});
    seconds += Number(process.hrtime.bigint() - t0) / 1e9;
    const lp = out.logprobs.data, V = out.logprobs.dims[2];
    for (let t = 0; t < seq; ++t)
      for (let b = 0; b < B; ++b) nll -= lp[(t * B + b) * V + Number(at(i + t + 1, b))];
    h = out.h_n;
    c = out.c_n;
  }
  const tokens = (steps - 1) * B;
  const loss = nll / tokens;
  if (!Number.isFinite(loss)) fail('the model gave a non-finite loss');
  process.stdout.write(JSON.stringify({
    perplexity: Math.exp(loss), loss, tokens, batch: B, bptt: opts.bptt, seconds,
    tokens_per_s: tokens / seconds, onnxruntime: ort.env.versions ? ort.env.versions.common : ''
  }) + '\n');
}

main().catch((e) => fail(String(e && e.message ? e.message : e)));
