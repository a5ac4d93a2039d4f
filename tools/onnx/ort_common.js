// What tools/onnx/ort_eval.js and ort_score.js share: the error exit, the command line
// (positional files and --name integer options), loading onnxruntime-node, and opening an lmquant
// ONNX export with its state's shape [layers, batch, hidden] read from the h0 input.
'use strict';

function fail(msg) {
  process.stderr.write('error: ' + msg + '\n');
  process.exit(1);
}

// `defaults`: {name: value} of the accepted options (integers; threads may be 0, others >= 1).
// Returns {files, opts}; exits with the usage when the number of files is not `nfiles`.
function parseArgs(argv, defaults, nfiles, usage) {
  const opts = Object.assign({}, defaults);
  const files = [];
  const names = Object.keys(defaults).map((k) => '--' + k).join(', ');
  for (let i = 0; i < argv.length; ++i) {
    if (!argv[i].startsWith('--')) {
      files.push(argv[i]);
      continue;
    }
    const key = argv[i].slice(2);
    if (!(key in opts)) fail('unknown option ' + argv[i] + ' (' + names + ')');
    const v = Number(argv[++i]);
    if (!Number.isInteger(v) || v < (key === 'threads' ? 0 : 1)) fail('bad value for ' + argv[i - 1]);
    opts[key] = v;
  }
  if (files.length !== nfiles) fail('usage: ' + usage);
  return {files, opts};
}

function loadOrt() {
  try {
    return require('onnxruntime-node');
  } catch (e) {
    fail('the npm package onnxruntime-node is not installed (tools/setup.sh installs it; set NODE_PATH)');
  }
}

// The session (threads 0: ONNX Runtime's default) and the state's layers L and hidden size H.
async function openExport(ort, path, threads) {
  const sessionOptions = {graphOptimizationLevel: 'all'};
  if (threads > 0) {
    sessionOptions.intraOpNumThreads = threads;
    sessionOptions.interOpNumThreads = 1;
  }
  const session = await ort.InferenceSession.create(path, sessionOptions);
  const meta = session.inputMetadata ? session.inputMetadata.find((m) => m.name === 'h0') : null;
  const L = meta && meta.shape ? Number(meta.shape[0]) : 0;
  const H = meta && meta.shape ? Number(meta.shape[2]) : 0;
  if (!(L > 0 && H > 0)) fail(path + ': no h0 input of shape [layers, batch, hidden]');
  return {session, L, H};
}

module.exports = {fail, parseArgs, loadOrt, openExport};
