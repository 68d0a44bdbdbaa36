// The aigc-keras demo page: every export under `aigc-keras demo --exports DIR` runs here, on this
// machine, with LiteRT.js on its WebAssembly CPU path. Nothing is uploaded. The page's controls come
// from each export's metadata.json; `window.demo` keeps what each panel last fed and got (for tests).

import {loadAndCompile, loadLiteRt, Tensor} from '@litertjs/core';

import {PageRandom} from './rng.js';
import {nextToken} from './sampling.js';

const PANELS = {gan: 'gan', diffusion: 'diffusion', vae: 'vae', text: 'text', lstm: 'text'};  // export family -> panel
const SCALE = 3;  // screen pixels per image pixel
const MORPH_STEPS = 10;

const demo = {ready: null, exports: [], gan: {}, diffusion: {}, edit: {}, vae: {}, text: {}};
window.demo = demo;

function $(panel, role) {
  return document.querySelector(`#${panel} [data-role="${role}"]`);
}

function say(panel, role, text) {
  $(panel, role).textContent = text;
}

/** Why an export cannot run here, or null: it must have a .tflite with fixed-size tensors. */
function incompatible(meta) {
  if (!meta.files || !meta.files.tflite) return 'it has no model.tflite: export it with --tflite';
  for (const [name, spec] of Object.entries(meta.signatures)) {
    for (const side of ['inputs', 'outputs']) {
      for (const [tensor, t] of Object.entries(spec[side])) {
        if (t.shape.some((d) => d < 0)) {
          return `its ${name}/${tensor} has no fixed size (made by aigc-keras ` +
              `${(meta.versions || {}).aigc_keras || '?'} before static shapes): export it again`;
        }
        if (!['float32', 'int32', 'uint8'].includes(t.dtype)) {
          return `its ${name}/${tensor} is ${t.dtype}, which LiteRT.js cannot take: export it again`;
        }
      }
    }
  }
  return null;
}

const TYPED = {float32: Float32Array, int32: Int32Array, uint8: Uint8Array};

/** Runs one signature: inputs {name: typed array or number}, shapes and dtypes from metadata. */
async function run(entry, signature, inputs) {
  const spec = entry.meta.signatures[signature].inputs;
  const tensors = {};
  for (const [name, t] of Object.entries(spec)) {
    const value = inputs[name];
    const data = ArrayBuffer.isView(value) ? value : new TYPED[t.dtype]([value]);
    tensors[name] = new Tensor(data, t.shape);
  }
  const start = performance.now();
  const outputs = await entry.model.run(signature, tensors);
  const ms = performance.now() - start;
  const result = {};
  for (const [name, tensor] of Object.entries(outputs)) {
    result[name] = tensor.toTypedArray().slice();
    tensor.delete();
  }
  for (const tensor of Object.values(tensors)) tensor.delete();
  return {result, ms};
}

/** Draws uint8 images [n, H, W, C] as a grid on the panel's canvas. */
function draw(panel, pixels, count, [height, width, channels], columns) {
  const canvas = $(panel, 'canvas');
  columns = columns || Math.ceil(Math.sqrt(count));
  const rows = Math.ceil(count / columns);
  canvas.width = columns * (width + 1) * SCALE;
  canvas.height = rows * (height + 1) * SCALE;
  const context = canvas.getContext('2d');
  context.fillStyle = '#222';
  context.fillRect(0, 0, canvas.width, canvas.height);
  const image = context.createImageData(width, height);
  const scratch = document.createElement('canvas');
  scratch.width = width;
  scratch.height = height;
  context.imageSmoothingEnabled = false;
  for (let n = 0; n < count; n++) {
    for (let p = 0; p < height * width; p++) {
      const at = (n * height * width + p) * channels;
      image.data[4 * p] = pixels[at];
      image.data[4 * p + 1] = pixels[at + (channels === 3 ? 1 : 0)];
      image.data[4 * p + 2] = pixels[at + (channels === 3 ? 2 : 0)];
      image.data[4 * p + 3] = 255;
    }
    scratch.getContext('2d').putImageData(image, 0, 0);
    const x = (n % columns) * (width + 1) * SCALE;
    const y = Math.floor(n / columns) * (height + 1) * SCALE;
    context.drawImage(scratch, x, y, width * SCALE, height * SCALE);
  }
}

/** Labels for `count` images: one class for all, or every class in turn (as `aigc-keras sample` does). */
function labels(meta, count, choice) {
  return Int32Array.from({length: count}, (_, i) => (choice === 'all' ? i % meta.num_classes : Number(choice)));
}

function classControl(panel, meta) {
  const select = $(panel, 'label');
  select.parentElement.hidden = !meta.conditional;
  if (!meta.conditional) return;
  select.replaceChildren(new Option('every class', 'all'),
      ...meta.class_names.map((name, i) => new Option(name, String(i))));
}

/** The rows of one call of a fixed-batch signature from row `first` of `count`: the last row repeats. */
function batchRows(first, batch, count) {
  return Array.from({length: batch}, (_, k) => Math.min(first + k, count - 1));
}

/** `rows` of `source` (rows of `size` floats), one after another. */
function gather(source, rows, size) {
  const out = new Float32Array(rows.length * size);
  rows.forEach((r, k) => out.set(source.subarray(r * size, (r + 1) * size), k * size));
  return out;
}

// ----- GAN and VAE: a grid of images from `generate`, `batch` per call.

function noiseSize(meta, noiseName) {
  return meta.signatures.generate.inputs[noiseName].shape.slice(1).reduce((a, b) => a * b, 1);
}

/** `count` images from a fixed-batch signature, `batch` rows per call (the last call repeats its last
 * row): `inputs(rows)` gives a call's inputs, `chosen` (or null) the label of every row. Says the timing. */
async function imagesInCalls(panel, entry, signature, count, chosen, inputs) {
  const meta = entry.meta;
  const perImage = meta.image_shape.reduce((a, b) => a * b, 1);
  const pixels = new Uint8Array(count * perImage);
  const calls = [];
  for (let first = 0; first < count; first += meta.batch) {
    const rows = batchRows(first, meta.batch, count);
    const call = inputs(rows);
    if (chosen) call.label = Int32Array.from(rows, (r) => chosen[r]);
    const {result, ms} = await run(entry, signature, call);
    calls.push(ms);
    pixels.set(result.images.subarray(0, Math.min(meta.batch, count - first) * perImage), first * perImage);
  }
  const mean = calls.reduce((a, b) => a + b, 0) / calls.length;
  say(panel, 'timing', `${calls.length} calls of ${signature}, ${mean.toFixed(1)} ms per call ` +
      `(${(mean / meta.batch).toFixed(1)} ms per image)`);
  return {pixels, calls};
}

/** Grid columns: one per class when a conditional model draws every class in turn. */
function classColumns(panel, meta, count) {
  return meta.conditional && $(panel, 'label').value === 'all' ? Math.min(count, meta.num_classes) : null;
}

async function generateImages(panel, entry, noiseName, extra, given = null) {
  const meta = entry.meta;
  const size = noiseSize(meta, noiseName);
  const noise = given || new PageRandom(Number($(panel, 'seed').value)).normal(Number($(panel, 'count').value) * size);
  const count = noise.length / size;
  const chosen = meta.conditional ? labels(meta, count, $(panel, 'label').value) : null;
  const {pixels, calls} = await imagesInCalls(panel, entry, 'generate', count, chosen,
      (rows) => ({[noiseName]: gather(noise, rows, size), ...extra}));
  draw(panel, pixels, count, meta.image_shape, given ? count : classColumns(panel, meta, count));
  Object.assign(demo[panel], {noise, labels: chosen, images: pixels, msPerCall: calls});
}

/** The VAE's latent space: ten codes on the line from one N(0, I) draw to another, decoded in a row. */
function morph(entry) {
  const size = noiseSize(entry.meta, 'z');
  const ends = new PageRandom(Number($('vae', 'seed').value)).normal(2 * size);
  const codes = new Float32Array(MORPH_STEPS * size);
  for (let i = 0; i < MORPH_STEPS; i++) {
    const a = i / (MORPH_STEPS - 1);
    for (let j = 0; j < size; j++) codes[i * size + j] = (1 - a) * ends[j] + a * ends[size + j];
  }
  return generateImages('vae', entry, 'z', {}, codes);
}

// ----- Diffusion: the whole sampler in one call, or denoise_step once per step.

async function stepByStep(entry) {
  const meta = entry.meta;
  const seed = Number($('diffusion', 'seed').value);
  const count = Number($('diffusion', 'count').value);
  const perImage = meta.image_shape.reduce((a, b) => a * b, 1);
  const noise = new PageRandom(seed).normal(count * perImage);  // the noise `generate` starts from
  const guidance = meta.conditional ? {guidance: Number($('diffusion', 'guidance').value)} : {};
  const chosen = meta.conditional ? labels(meta, count, $('diffusion', 'label').value) : null;
  const flow = meta.objective === 'flow';
  const times = [...meta.timesteps, flow ? 0 : -1];
  let x = noise;
  const trajectory = [];
  const start = performance.now();
  let running = 0;
  let calls = 0;
  for (let i = 0; i < meta.timesteps.length; i++) {
    const next = new Float32Array(count * perImage);
    const images = new Uint8Array(count * perImage);
    for (let first = 0; first < count; first += meta.batch) {  // `batch` images per call, the last row repeated
      const rows = batchRows(first, meta.batch, count);
      const inputs = {x: gather(x, rows, perImage), t: times[i], t_prev: times[i + 1], ...guidance};
      if (chosen) inputs.label = Int32Array.from(rows, (r) => chosen[r]);
      const {result, ms} = await run(entry, 'denoise_step', inputs);
      running += ms;
      calls += 1;
      const kept = Math.min(meta.batch, count - first) * perImage;
      next.set(result.x_prev.subarray(0, kept), first * perImage);
      images.set(result.images.subarray(0, kept), first * perImage);
    }
    x = next;
    trajectory.push(images);
    draw('diffusion', images, count, meta.image_shape, classColumns('diffusion', meta, count));
    say('diffusion', 'counter', `step ${i + 1} of ${meta.timesteps.length}`);
    await new Promise(requestAnimationFrame);  // show each step
  }
  const ms = performance.now() - start;
  say('diffusion', 'timing', `${calls} calls of denoise_step, ${(running / calls).toFixed(1)} ms per call, ` +
      `${ms.toFixed(0)} ms in all with drawing`);
  Object.assign(demo.diffusion, {stepNoise: noise, stepLabels: chosen, trajectory, finalX: x,
    msPerStep: running / meta.timesteps.length});
}

// ----- Edit: a picture (a drawing, or a generated one) changed by an export's `edit` signature.

const SKETCH_SCALE = 8;  // screen pixels per image pixel while drawing
const BRUSH = 1.5;  // brush radius, in image pixels
const sketch = {image: null, mask: null, masked: false};

/** The picture being edited, with the mask over it in red. */
function showSketch(meta) {
  const [height, width, channels] = meta.image_shape;
  const canvas = $('edit', 'sketch');
  canvas.width = width * SKETCH_SCALE;
  canvas.height = height * SKETCH_SCALE;
  const scratch = document.createElement('canvas');
  scratch.width = width;
  scratch.height = height;
  const image = scratch.getContext('2d').createImageData(width, height);
  for (let p = 0; p < height * width; p++) {
    const red = sketch.mask[p] ? 0.45 : 0;
    for (let k = 0; k < 3; k++) {
      const v = sketch.image[p * channels + (channels === 3 ? k : 0)];
      image.data[4 * p + k] = (1 - red) * v + (k === 0 ? 255 * red : 0);
    }
    image.data[4 * p + 3] = 255;
  }
  scratch.getContext('2d').putImageData(image, 0, 0);
  const context = canvas.getContext('2d');
  context.imageSmoothingEnabled = false;
  context.drawImage(scratch, 0, 0, canvas.width, canvas.height);
}

/** One touch of the brush at a pointer event: white ink on the picture, or the mask. */
function paint(meta, event) {
  const [height, width, channels] = meta.image_shape;
  const box = $('edit', 'sketch').getBoundingClientRect();
  const cx = (event.clientX - box.left) / box.width * width;
  const cy = (event.clientY - box.top) / box.height * height;
  const masking = document.querySelector('#edit input[name=tool]:checked').value === 'mask';
  for (let y = Math.floor(cy - BRUSH); y <= cy + BRUSH; y++) {
    for (let x = Math.floor(cx - BRUSH); x <= cx + BRUSH; x++) {
      const d = Math.hypot(x + 0.5 - cx, y + 0.5 - cy);
      if (x < 0 || y < 0 || x >= width || y >= height || d > BRUSH) continue;
      const p = y * width + x;
      if (masking) {
        sketch.mask[p] = 255;
      } else {
        const ink = Math.round(255 * Math.min(1, 1.5 * (1 - d / BRUSH)));  // soft edges, like a pen stroke
        for (let k = p * channels; k < (p + 1) * channels; k++) sketch.image[k] = Math.max(sketch.image[k], ink);
      }
    }
  }
  if (masking && !sketch.masked) $('edit', 'strength').value = '1';  // a mask: the masked part is drawn anew
  sketch.masked = sketch.masked || masking;
  showSketch(meta);
}

/** A new picture to edit, with no mask: the diffusion panel's first picture, or a blank one. */
function newSketch(meta, blank) {
  const perImage = meta.image_shape.reduce((a, b) => a * b, 1);
  sketch.image = !blank && demo.diffusion.images ? demo.diffusion.images.slice(0, perImage) :
      new Uint8Array(perImage);
  sketch.mask = new Uint8Array(meta.image_shape[0] * meta.image_shape[1]);
  sketch.masked = false;
  $('edit', 'strength').value = '0.6';
  showSketch(meta);
}

/** Ready to draw: pointer events on the sketch, and a first picture to complete (its top half masked). */
function startSketch(entry) {
  const meta = entry.meta;
  const canvas = $('edit', 'sketch');
  let down = false;
  canvas.addEventListener('pointerdown', (event) => {
    down = true;
    canvas.setPointerCapture(event.pointerId);
    paint(meta, event);
  });
  canvas.addEventListener('pointermove', (event) => down && paint(meta, event));
  for (const end of ['pointerup', 'pointercancel']) canvas.addEventListener(end, () => (down = false));
  newSketch(meta, false);
  sketch.mask.fill(255, 0, (meta.image_shape[0] >> 1) * meta.image_shape[1]);
  sketch.masked = true;
  $('edit', 'strength').value = '1';
  showSketch(meta);
}

function tile(source, times) {
  const out = new Uint8Array(source.length * times);
  for (let k = 0; k < times; k++) out.set(source, k * source.length);
  return out;
}

async function editImages(entry) {
  const meta = entry.meta;
  const [height, width, channels] = meta.image_shape;
  const perImage = height * width * channels;
  const count = Number($('edit', 'count').value);
  const strength = Number($('edit', 'strength').value);
  const noise = new PageRandom(Number($('edit', 'seed').value)).normal(count * perImage);
  const chosen = meta.conditional ? labels(meta, count, $('edit', 'label').value) : null;
  const mask = sketch.mask.some((v) => v) ? sketch.mask.slice() : new Uint8Array(height * width).fill(255);
  const extra = meta.conditional ? {guidance: Number($('edit', 'guidance').value)} : {};
  const {pixels, calls} = await imagesInCalls('edit', entry, 'edit', count, chosen, (rows) => ({
    image: tile(sketch.image, rows.length), mask: tile(mask, rows.length), noise: gather(noise, rows, perImage),
    strength, ...extra}));
  draw('edit', pixels, count, meta.image_shape, classColumns('edit', meta, count));
  Object.assign(demo.edit, {image: sketch.image.slice(), mask, noise, labels: chosen, strength, images: pixels,
    msPerCall: calls});
}

// ----- Text: streamed through `step` with the sampling here, or `generate` in one call.

function tokenizer(meta) {
  if (meta.tokenizer.kind === 'bytes') {
    return {encode: (text) => Array.from(new TextEncoder().encode(text)),
      decoder: () => {
        const decoder = new TextDecoder();  // bytes that are not UTF-8 show as nothing, as in Python
        return (id) => decoder.decode(new Uint8Array([id]), {stream: true}).replaceAll('\uFFFD', '');
      }};
  }
  const index = new Map(meta.vocabulary.map((c, i) => [c, i]));
  return {encode: (text) => Array.from(text, (c) => index.get(c) ?? 0),
    decoder: () => (id) => meta.vocabulary[id]};
}

function textControls() {
  return {prompt: $('text', 'prompt').value || '\n', length: Number($('text', 'length').value),
    temperature: Number($('text', 'temperature').value), topK: Number($('text', 'top-k').value),
    topP: Number($('text', 'top-p').value), seed: Number($('text', 'seed').value)};
}

async function write(entry) {
  const meta = entry.meta;
  const c = textControls();
  const tokens = tokenizer(meta);
  const decode = tokens.decoder();
  const uniform = new PageRandom(c.seed).uniform(c.length);
  const zeros = () => Object.fromEntries(meta.state.map((s) => [s.name,
    new TYPED[s.dtype](s.shape.reduce((a, b) => a * b, 1))]));
  const context = meta.max_positions;
  let calls = 0;
  let busy = 0;

  async function feed(token, state) {
    const {result, ms} = await run(entry, 'step', {token: Int32Array.of(token), ...state});
    calls++;
    busy += ms;
    return result;
  }
  async function read(ids) {
    let state = zeros();
    for (const token of ids) {
      const out = await feed(token, state);
      state = Object.fromEntries(meta.state.map((s) => [s.name, out[s.name]]));
    }
    return state;
  }

  const history = tokens.encode(c.prompt);
  const output = $('text', 'output');
  output.textContent = c.prompt;
  let state = await read(context ? history.slice(-context, -1) : history.slice(0, -1));
  const ids = [];
  for (let i = 0; i < c.length; i++) {
    if (context && state.position[0] >= context) state = await read(history.slice(-(context >> 1), -1));
    const out = await feed(history[history.length - 1], state);
    state = Object.fromEntries(meta.state.map((s) => [s.name, out[s.name]]));
    const token = nextToken(out.logits, uniform[i], c.temperature, c.topK, c.topP, entry.meta.unknown_id ?? null);
    history.push(token);
    ids.push(token);
    output.textContent += decode(token);
    if (i % 8 === 0) await new Promise(requestAnimationFrame);  // let the characters appear
  }
  say('text', 'timing', `${calls} calls of step, ${(busy / calls).toFixed(2)} ms per call`);
  Object.assign(demo.text, {streamedIds: ids, uniform, promptIds: tokens.encode(c.prompt), msPerStep: busy / calls});
}

async function oneCall(entry) {
  const meta = entry.meta;
  const c = textControls();
  const tokens = tokenizer(meta);
  const prompt = tokens.encode(c.prompt).slice(-meta.prompt_capacity);
  const padded = new Int32Array(meta.prompt_capacity);
  padded.set(prompt);
  const uniform = new Float32Array(meta.length);
  uniform.set(new PageRandom(c.seed).uniform(Math.min(c.length, meta.length)));
  const {result, ms} = await run(entry, 'generate', {prompt_ids: padded, prompt_length: prompt.length,
    uniform, temperature: c.temperature, top_k: c.topK, top_p: c.topP});
  const ids = Array.from(result.ids.subarray(0, Math.min(c.length, meta.length)));
  const decode = tokens.decoder();
  $('text', 'output').textContent = c.prompt + ids.map(decode).join('');
  say('text', 'timing', `one call of generate (${meta.length} ids), ${ms.toFixed(1)} ms, ` +
      `${(ms / meta.length).toFixed(3)} ms per id`);
  Object.assign(demo.text, {generatedIds: ids, generateInputs: {prompt_ids: padded, uniform},
    msPerGeneratedId: ms / meta.length});
}

// ----- Start: find the exports, load the runtime, wire each panel.

/** Runs `action` of `panel` with every button disabled; `demo[panel].done` says when it ended. */
async function act(panel, entry, action) {
  const task = {
    'gan:generate': () => generateImages('gan', entry, 'z', {}),
    'diffusion:generate': () => generateImages('diffusion', entry, 'noise', entry.meta.conditional ?
        {guidance: Number($('diffusion', 'guidance').value)} : {}),
    'diffusion:steps': () => stepByStep(entry),
    'edit:edit': () => editImages(entry),
    'edit:take': () => newSketch(entry.meta, false),
    'edit:clear': () => newSketch(entry.meta, true),
    'vae:generate': () => generateImages('vae', entry, 'z', {}),
    'vae:morph': () => morph(entry),
    'text:write': () => write(entry),
    'text:one-call': () => oneCall(entry),
  }[`${panel}:${action}`];
  document.querySelectorAll('button').forEach((b) => (b.disabled = true));
  demo[panel].done = false;
  try {
    await task();
  } catch (error) {
    say(panel, 'message', `failed: ${error.message}`);
  } finally {
    document.querySelectorAll('button').forEach((b) => (b.disabled = false));
    demo[panel].done = true;
  }
}

function wire(panel, entry) {
  for (const button of document.querySelectorAll(`#${panel} button`)) {
    button.addEventListener('click', () => act(panel, entry, button.dataset.action));
  }
}

// LiteRT.js's WebAssembly prints its own log lines ("INFO: ...", "WARNING: ...") with console.error:
// show them at their own level, so that the console's errors are real ones.
const consoleError = console.error.bind(console);
console.error = (...args) => {
  const text = String(args[0] ?? '');
  if (text.startsWith('INFO: ')) return console.info(...args);
  if (text.startsWith('WARNING: ')) return console.warn(...args);
  return consoleError(...args);
};

const compiled = new Map();  // export name -> its compiled model (the edit panel shares the diffusion one)

/** Loads one panel's export and wires its controls; throws (for that panel alone) when it cannot. The
 * edit panel takes the first export that has an `edit` signature. */
async function startPanel(panel, listing) {
  const editing = panel === 'edit';
  const mine = (family) => (editing ? PANELS[family] === 'diffusion' : PANELS[family] === panel);
  const found = listing.exports.find((e) => (editing ? e.metadata.signatures?.edit : mine(e.metadata.family)));
  const broken = listing.broken.find((e) => mine(e.family));
  const controls = document.querySelector(`#${panel} .controls`);
  controls.hidden = true;
  if (!found) {
    const family = editing ? 'diffusion' : panel;
    say(panel, 'message', broken ? `export/${broken.name} cannot run here: ${broken.why}.` :
        `No ${editing ? 'export with an edit signature' : `${panel} export`} in ${listing.folder}: run ` +
        `\`aigc-keras export ${family} --tflite\` and reload.`);
    return;
  }
  const why = incompatible(found.metadata);
  if (why) {
    say(panel, 'message', `export/${found.name} cannot run here: ${why}.`);
    return;
  }
  if (!compiled.has(found.name)) {
    compiled.set(found.name, await loadAndCompile(`/exports/${found.name}/model.tflite`, {accelerator: 'wasm'}));
  }
  const entry = {meta: found.metadata, model: compiled.get(found.name)};
  demo[panel].export = found.name;
  if ($(panel, 'label')) classControl(panel, found.metadata);
  if ($(panel, 'guidance')) $(panel, 'guidance').parentElement.hidden = !found.metadata.conditional;
  if (editing) startSketch(entry);
  wire(panel, entry);
  controls.hidden = false;
  say(panel, 'message', `export/${found.name}: ${found.metadata.family}, batch ${found.metadata.batch ?? 1}` +
      (found.metadata.sampler ? `, ${found.metadata.sampler} x${found.metadata.steps}` : ''));
  await act(panel, entry, document.querySelector(`#${panel} button`).dataset.action);  // a first picture (or text)
}

async function start() {
  const listing = await (await fetch('/exports/index.json')).json();
  demo.exports = listing.exports;
  say('page', 'source', `exports from ${listing.folder}`);
  const unknown = listing.broken.filter((e) => !PANELS[e.family]);
  if (unknown.length) {
    say('page', 'source', `exports from ${listing.folder}; ` +
        unknown.map((e) => `export/${e.name} cannot run here: ${e.why}`).join('; '));
  }
  await loadLiteRt('/vendor/@litertjs/core/wasm/');
  for (const panel of ['gan', 'diffusion', 'edit', 'vae', 'text']) {
    try {
      await startPanel(panel, listing);
    } catch (error) {
      say(panel, 'message', `The ${panel} export could not start: ${error.message}`);
    }
  }
}

demo.ready = start().then(() => true, (error) => {
  say('page', 'source', `The demo could not start: ${error.message}`);
  return false;
});
