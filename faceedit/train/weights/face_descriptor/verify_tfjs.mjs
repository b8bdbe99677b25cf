// The reference descriptor, from @vladmandic/face-api's own bundled build (its tfjs, cpu backend), for checking
// faceedit/train/face_descriptor.py against it. Not run by the tests (they need neither node nor the package).
//
//   npm pack @vladmandic/face-api@1.7.15 && tar xzf vladmandic-face-api-1.7.15.tgz   # -> ./package
//   node verify_tfjs.mjs ./package image.rgb 150 150 > reference.json                # raw uint8 RGB, row-major
//
// It loads the package's own model/ files, not the copies here: the sha256 in NOTICE.md says they are the same.
import fs from 'fs';
import path from 'path';

const [pkg, image, height, width] = process.argv.slice(2);
// The browser bundle stubs out node's 'util', which tfjs's node platform needs: hide node while it loads, then
// give tfjs a plain platform (its cpu kernels are the same either way) and face-api a tensors-only environment.
const versions = process.versions;
Object.defineProperty(process, 'versions', { value: { ...versions, node: undefined }, configurable: true });
const faceapi = await import(path.resolve(pkg, 'dist/face-api.esm.js'));
Object.defineProperty(process, 'versions', { value: versions, configurable: true });
const { tf } = faceapi;
tf.env().setPlatform('plain-node', {
  fetch: globalThis.fetch, now: () => performance.now(), setTimeoutCustom: setTimeout,
  encode: (s) => new TextEncoder().encode(s), decode: (b, e) => new TextDecoder(e).decode(b),
  isTypedArray: (a) => ArrayBuffer.isView(a) && !(a instanceof DataView),
});
const none = class {};
faceapi.env.setEnv({ Canvas: none, CanvasRenderingContext2D: none, Image: none, ImageData: none, Video: none,
  createCanvasElement: () => null, createImageElement: () => null, createVideoElement: () => null,
  fetch: globalThis.fetch, readFile: fs.promises.readFile });
await tf.setBackend('cpu');
await tf.ready();

const model = path.resolve(pkg, 'model');
const manifest = JSON.parse(fs.readFileSync(path.join(model, 'face_recognition_model-weights_manifest.json')));
const shards = Buffer.concat(manifest[0].paths.map((p) => fs.readFileSync(path.join(model, p))));
const buffer = shards.buffer.slice(shards.byteOffset, shards.byteOffset + shards.byteLength);
const net = new faceapi.FaceRecognitionNet();
net.loadFromWeightMap(tf.io.decodeWeights(buffer, manifest[0].weights));

const pixels = tf.tensor3d(new Int32Array(fs.readFileSync(image)), [Number(height), Number(width), 3], 'int32');
const descriptor = Array.from(await net.computeFaceDescriptor(pixels));
console.log(JSON.stringify({ package: `@vladmandic/face-api ${faceapi.version}`, tfjs: tf.version_core,
  backend: tf.getBackend(), image: path.basename(image), shape: [Number(height), Number(width), 3], descriptor }));
