#!/usr/bin/env node
// Runs an ONNX model in ONNX Runtime (npm onnxruntime-node, CPU) on float32 or int64 inputs.
//
//   ORT_NODE_MODULES=build/ort/node_modules node tests/onnx/ort_run.js MODEL.onnx INPUT.bin DIMS OUTPUT.bin [DTYPE]
//   ORT_NODE_MODULES=... node tests/onnx/ort_run.js MODEL.onnx OUTPUT.bin NAME=INPUT.bin:DIMS:DTYPE...
//
// INPUT.bin: raw little-endian DTYPE (float32, the default, or int64: token indices or lengths),
// row-major, DIMS elements (DIMS like 7,1,28,28; "" for a scalar). The first form feeds the
// model's first input; the second feeds each named input (e.g. input=x.bin:7,6,5:float32
// input_lengths=len.bin:7:int64; NAME ends at the first '=', DIMS and DTYPE follow the last two
// ':'). The model's first output (float32) is written to OUTPUT.bin the same way, and one JSON
// line goes to stdout (input_name: the model's first input):
//   {"input_name":"x","output_name":"y","dims":[7,10]}
// Graph optimizations are disabled (exact numerics of the nodes as written). Errors: a message on
// stderr, exit code 1. Used by tests/support/onnxruntime.cpp (scripts/setup_ort.sh installs ORT).
'use strict';
const fs = require('fs');
const path = require('path');

function fail(msg) {
  throw new Error(msg);
}

function parseDims(text) {
  if (text.trim() === '') return [];
  return text.split(',').map((s) => {
    const t = s.trim();
    if (!/^\d+$/.test(t)) fail(`bad DIMS '${text}': expected comma-separated non-negative integers`);
    return Number(t);
  });
}

function readInput(inputPath, dimsText, dtype) {
  if (dtype !== 'float32' && dtype !== 'int64') fail(`bad DTYPE '${dtype}': expected float32 or int64`);
  const dims = parseDims(dimsText);
  const n = dims.reduce((a, b) => a * b, 1);
  const bytes = fs.readFileSync(inputPath);
  const size = dtype === 'int64' ? 8 : 4;
  if (bytes.length !== n * size) {
    fail(`'${inputPath}' has ${bytes.length} bytes; dims [${dims}] need ${n * size} (${dtype})`);
  }
  const data = dtype === 'int64' ? new BigInt64Array(n) : new Float32Array(n);
  for (let i = 0; i < n; ++i) data[i] = dtype === 'int64' ? bytes.readBigInt64LE(i * 8) : bytes.readFloatLE(i * 4);
  return {dtype, data, dims};
}

// NAME=INPUT.bin:DIMS:DTYPE -> {name, path, dims, dtype}
function parseFeed(arg) {
  const eq = arg.indexOf('=');
  const last = arg.lastIndexOf(':');
  const mid = last > 0 ? arg.lastIndexOf(':', last - 1) : -1;
  if (eq <= 0 || mid <= eq) fail(`bad input '${arg}': expected NAME=INPUT.bin:DIMS:DTYPE`);
  return {name: arg.slice(0, eq), path: arg.slice(eq + 1, mid), dims: arg.slice(mid + 1, last), dtype: arg.slice(last + 1)};
}

async function main() {
  const args = process.argv.slice(2);
  const usage = 'usage: node ort_run.js MODEL.onnx INPUT.bin DIMS OUTPUT.bin [float32|int64], or ' +
                'node ort_run.js MODEL.onnx OUTPUT.bin NAME=INPUT.bin:DIMS:DTYPE... (ORT_NODE_MODULES set)';
  // The named form: the third argument holds '=' (DIMS never does).
  const named = args.length >= 3 && args[2].includes('=');
  if (!named && args.length !== 4 && args.length !== 5) fail(usage);
  const modelPath = args[0];
  const outputPath = named ? args[1] : args[3];
  const feeds = named ? args.slice(2).map(parseFeed) : [];
  if (named && new Set(feeds.map((f) => f.name)).size !== feeds.length) fail(`an input is named twice: ${args.slice(2)}`);

  const modules = process.env.ORT_NODE_MODULES;
  if (!modules) {
    fail('ORT_NODE_MODULES is not set: the node_modules directory holding onnxruntime-node ' +
         '(scripts/setup_ort.sh installs it into build/ort/node_modules)');
  }
  let ort;
  try {
    ort = require(path.join(path.resolve(modules), 'onnxruntime-node'));
  } catch (e) {
    fail(`cannot load onnxruntime-node from '${modules}': ${e.message}`);
  }

  if (!fs.existsSync(modelPath)) fail(`model '${modelPath}' does not exist`);
  const session = await ort.InferenceSession.create(modelPath, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'disabled',
  });
  if (session.inputNames.length === 0) fail(`model '${modelPath}' has no inputs`);
  if (session.outputNames.length === 0) fail(`model '${modelPath}' has no outputs`);
  const inputName = session.inputNames[0];
  const outputName = session.outputNames[0];

  const feed = {};
  if (named) {
    for (const f of feeds) {
      if (!session.inputNames.includes(f.name)) {
        fail(`model '${modelPath}' has no input '${f.name}' (its inputs: ${session.inputNames.join(', ')})`);
      }
      const t = readInput(f.path, f.dims, f.dtype);
      feed[f.name] = new ort.Tensor(t.dtype, t.data, t.dims);
    }
  } else {
    const t = readInput(args[1], args[2], args.length === 5 ? args[4] : 'float32');
    feed[inputName] = new ort.Tensor(t.dtype, t.data, t.dims);
  }
  const results = await session.run(feed, [outputName]);
  const out = results[outputName];
  if (out.type !== 'float32') fail(`output '${outputName}' is ${out.type}, not float32`);
  const buf = Buffer.alloc(out.data.length * 4);
  for (let i = 0; i < out.data.length; ++i) buf.writeFloatLE(out.data[i], i * 4);
  fs.writeFileSync(outputPath, buf);
  process.stdout.write(JSON.stringify({input_name: inputName, output_name: outputName, dims: out.dims.map(Number)}) + '\n');
}

main().catch((e) => {
  process.stderr.write(`ort_run.js: ${e && e.message ? e.message : e}\n`);
  process.exit(1);
});
