// Independent reference for the NanoDet detector: the same TF.js graph run by TensorFlow.js
// itself (@tensorflow/tfjs, cpu backend), plus NanoDet decoding written with tf ops here.
// usage: node tfjs_reference.js MODEL_DIR INPUT_BIN OUT_DIR H W [node names...]
//   INPUT_BIN: float32 [1,3,416,416] (already pre-processed by the caller)
//   writes OUT_DIR/<safe node name>.bin (float32) + OUT_DIR/index.json (shapes) + OUT_DIR/boxes.json
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');

async function main() {
  const [modelDir, inputBin, outDir, H, W, ...extra] = process.argv.slice(2);
  await tf.setBackend('cpu');
  const spec = JSON.parse(fs.readFileSync(path.join(modelDir, 'nanodet.json')));
  const weights = Buffer.concat(spec.weightsManifest[0].paths.map((p) => fs.readFileSync(path.join(modelDir, p))));
  const model = await tf.loadGraphModel(tf.io.fromMemory({
    modelTopology: spec.modelTopology, weightSpecs: spec.weightsManifest[0].weights,
    weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
    format: spec.format, generatedBy: spec.generatedBy, convertedBy: spec.convertedBy,
    signature: spec.signature }));
  const buf = fs.readFileSync(inputBin);
  const x = tf.tensor(new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4), [1, 3, 416, 416]);
  const outNames = ['Identity', 'Identity_1', 'Identity_2', 'Identity_3', 'Identity_4', 'Identity_5'];
  const names = outNames.concat(extra);
  const res = model.execute({ 'input_1': x }, names);
  fs.mkdirSync(outDir, { recursive: true });
  const index = {};
  for (let i = 0; i < names.length; i++) {
    const safe = names[i].replace(/[^A-Za-z0-9_]/g, '_');
    const data = await res[i].data();
    fs.writeFileSync(path.join(outDir, safe + '.bin'), Buffer.from(new Float32Array(data).buffer));
    index[names[i]] = { file: safe + '.bin', shape: res[i].shape };
  }
  fs.writeFileSync(path.join(outDir, 'index.json'), JSON.stringify(index));
  // NanoDet decoding with tf ops: sigmoid scores as given, GFL integral over 11 bins x stride,
  // centres at (i + 0.5) * stride, per-class NMS (IoU 0.6), score > 0.35.
  const boxes = [];
  for (const s of [8, 16, 32]) {
    const g = 416 / s;
    const cls = res.find((t) => t.shape[1] === g * g && t.shape[2] === 80).squeeze();
    const reg = res.find((t) => t.shape[1] === g * g && t.shape[2] === 44).squeeze();
    const dist = tf.tidy(() => tf.softmax(reg.reshape([g * g, 4, 11]), -1).mul(tf.range(0, 11)).sum(-1).mul(s));
    const d = await dist.array();
    const sc = await cls.array();
    for (let i = 0; i < g * g; i++) {
      let best = 0; let c = 0;
      for (let j = 0; j < 80; j++) if (sc[i][j] > best) { best = sc[i][j]; c = j; }
      if (best <= 0.35) continue;
      const cx = ((i % g) + 0.5) * s; const cy = (Math.floor(i / g) + 0.5) * s;
      boxes.push({ c, score: best, box: [cx - d[i][0], cy - d[i][1], cx + d[i][2], cy + d[i][3]]
        .map((v, k) => Math.min(Math.max(v * (k % 2 === 0 ? W / 416 : H / 416), 0), k % 2 === 0 ? W : H)) });
    }
  }
  const kept = [];
  for (const c of [...new Set(boxes.map((b) => b.c))]) {
    const bs = boxes.filter((b) => b.c === c);
    const idx = await tf.image.nonMaxSuppressionAsync(
      tf.tensor2d(bs.map((b) => [b.box[1], b.box[0], b.box[3], b.box[2]])), tf.tensor1d(bs.map((b) => b.score)),
      100, 0.6, 0.0);
    for (const k of await idx.array()) kept.push(bs[k]);
  }
  kept.sort((a, b) => b.score - a.score);
  fs.writeFileSync(path.join(outDir, 'boxes.json'), JSON.stringify(kept));
}
main().catch((e) => { console.error(e); process.exit(1); });
