// Live mode: the microphone's speech goes to the server's WebSocket (/live/ws, protocol in
// granumamba/live_server.py) as float32 PCM; the pose frames that come back pose the same body
// the 3D view and the glTF export use. Frames play at 30 fps from a buffer of one block, the
// frames the model answers at a time (4 for a causal model, 16 for one whose decoders look ahead).
import * as THREE from 'three';
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';
import { zipSync } from 'fflate';
import { makeStage } from './stage.js';

const root = location.href.split('/gradio_api/')[0].replace(/\/live\/?$/, '');  // the app's own address
const socketUrl = root.replace(/^http/, 'ws') + '/live/ws';
const status = document.getElementById('status');
const latencyText = document.getElementById('latency');
const levelBar = document.querySelector('#level div');
const startButton = document.getElementById('start');
const stopButton = document.getElementById('stop');
const sliders = ['coarse', 'mid', 'fine'].map((id) => document.getElementById(id));
const downloadLink = document.getElementById('download');
const { scene, camera, renderer, controls } = makeStage(document.getElementById('view'), document.getElementById('reset'));

// What the browser test reads: frames received and shown, per frame the arms' motion and the
// microphone's level, latencies, how the session ended and the take offered for download.
const state = { bodyLoaded: false, ready: null, received: 0, shown: -1, motion: [], level: [], latencies: [], closed: null, download: null };
window.liveState = state;

let bones = [];
let restPelvis = null;
new GLTFLoader().load(root + '/live/body.glb', (gltf) => {
  scene.add(gltf.scene);
  gltf.scene.traverse((node) => { if (node.isBone || node.type === 'Bone' || node.isObject3D) bones[node.name] = node; });
  state.bodyLoaded = true;
}, undefined, (err) => { status.textContent = 'the body could not be loaded: ' + err; });

let socket = null, context = null, micStream = null;
let take = [];             // every frame of the session (Float32Array of 268), by index: played, then downloaded (19 MB for the 10 minutes a session may last)
let playhead = -1;         // frame shown (fractional), -1 before the first
let sendTimes = [];        // [samples sent so far, performance.now()] for latency
let sampleRate = 48000, samplesSent = 0, pending = [], pendingLength = 0;
let levelSum = 0, levelCount = 0, levelFrame = 0;
const ARM_JOINTS = [16, 17, 18, 19, 20, 21];  // shoulders, elbows, wrists (SMPL-X order)

function gains() { return sliders.map((s) => parseFloat(s.value)); }
sliders.forEach((s) => s.addEventListener('input', () => {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: 'gains', gains: gains() }));
}));

function median(values) {
  const v = values.slice().sort((a, b) => a - b);
  return v.length ? v[Math.floor(v.length / 2)] : NaN;
}

function onFrames(buffer) {
  const view = new DataView(buffer);
  const length = view.getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, length)));
  const floats = new Float32Array(buffer.slice(4 + length));
  const size = state.ready.frame_floats;
  const now = performance.now();
  for (let k = 0; k < header.count; k++) {
    const index = header.first + k;
    const frame = floats.subarray(k * size, (k + 1) * size);
    take[index] = frame;
    const previous = take[index - 1];
    let moved = 0;
    if (previous) for (const j of ARM_JOINTS) for (let c = 0; c < 3; c++) moved += Math.abs(frame[3 * j + c] - previous[3 * j + c]);
    state.motion[index] = moved;
    // latency: from the moment the speech this frame answers had been sent to now
    const answered = Math.ceil(((index + 1) / 30) * sampleRate);
    const sent = sendTimes.find((entry) => entry[0] >= answered);
    if (sent) state.latencies.push(now - sent[1]);
  }
  sendTimes = sendTimes.filter((entry) => entry[0] >= Math.ceil(((header.first + header.count) / 30) * sampleRate));
  state.received = header.first + header.count;
  if (state.latencies.length > 600) state.latencies.splice(0, state.latencies.length - 600);
  const recent = state.latencies.slice(-90);
  latencyText.textContent = `speech to pose: ${median(recent).toFixed(0)} ms (median of the last ${recent.length} frames)`;
}

function pose(frame) {
  for (let j = 0; j < state.ready.joints.length; j++) {
    const bone = bones[state.ready.joints[j]];
    if (!bone) continue;
    const x = frame[3 * j], y = frame[3 * j + 1], z = frame[3 * j + 2];
    const angle = Math.hypot(x, y, z);
    if (angle < 1e-8) bone.quaternion.identity();
    else bone.quaternion.setFromAxisAngle(new THREE.Vector3(x / angle, y / angle, z / angle), angle);
  }
  const pelvis = bones[state.ready.joints[0]];
  if (pelvis) {
    if (!restPelvis) restPelvis = pelvis.position.clone();
    pelvis.position.set(restPelvis.x + frame[165], restPelvis.y + frame[166], restPelvis.z + frame[167]);
  }
}

function sendAudio(samples) {
  pending.push(samples);
  pendingLength += samples.length;
  for (const value of samples) { levelSum += value * value; levelCount++; }
  // the microphone's level per motion frame (1/30 s), for the read-out and the tests
  const perFrame = sampleRate / 30;
  while (levelCount >= perFrame) {
    state.level[levelFrame++] = Math.sqrt(levelSum / levelCount);
    levelBar.style.width = Math.min(100, 400 * Math.sqrt(levelSum / levelCount)) + '%';
    levelSum = 0; levelCount = 0;
  }
  if (pendingLength < sampleRate / 50) return;  // 20 ms a message
  const chunk = new Float32Array(pendingLength);
  let offset = 0;
  for (const piece of pending) { chunk.set(piece, offset); offset += piece.length; }
  pending = []; pendingLength = 0;
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(chunk.buffer);
    samplesSent += chunk.length;
    sendTimes.push([samplesSent, performance.now()]);
  }
}

async function start() {
  startButton.disabled = true;
  status.textContent = 'asking for the microphone';
  try {
    micStream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true } });
  } catch (err) {
    status.textContent = 'no microphone: ' + err.message + ' (allow it in the browser, and open the demo over https or on localhost)';
    startButton.disabled = false;
    return;
  }
  context = new AudioContext();
  sampleRate = context.sampleRate;
  await context.audioWorklet.addModule(new URL('./pcm-worklet.js', import.meta.url));
  const capture = new AudioWorkletNode(context, 'pcm-capture');
  const mute = context.createGain();
  mute.gain.value = 0;  // the worklet runs only when connected to the output: silently
  context.createMediaStreamSource(micStream).connect(capture).connect(mute).connect(context.destination);
  Object.assign(state, { received: 0, shown: -1, motion: [], level: [], latencies: [], closed: null, download: null });
  downloadLink.hidden = true;
  if (downloadLink.href) URL.revokeObjectURL(downloadLink.href);
  take = []; playhead = -1; sendTimes = []; samplesSent = 0; pending = []; pendingLength = 0; levelFrame = 0;
  socket = new WebSocket(socketUrl);
  socket.binaryType = 'arraybuffer';
  socket.onopen = () => socket.send(JSON.stringify({ type: 'start', sample_rate: sampleRate, encoding: 'f32le', gains: gains() }));
  socket.onmessage = (event) => {
    if (typeof event.data !== 'string') return onFrames(event.data);
    const message = JSON.parse(event.data);
    if (message.type === 'ready') {
      state.ready = message;
      status.textContent = 'listening: speak';
      stopButton.disabled = false;
      capture.port.onmessage = (e) => sendAudio(e.data);
    }
  };
  socket.onclose = (event) => {
    state.closed = { code: event.code, reason: event.reason };
    if (event.code !== 1000) status.textContent = `the live session ended: ${event.reason || 'the connection closed'} (${event.code})`;
    else status.textContent = 'stopped. Press Start to speak again.';
    release();
    offerTake();
  };
}

// The session's motion as BEAT2's npz, the format `generate --npz` and `live --out` write: a zip
// (fflate) of .npy arrays, each a header and the array's bytes (the .npy format is a few lines:
// https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html).
function npy(descr, shape, bytes) {
  const dims = shape.length === 0 ? '()' : shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${dims}, }`;
  header += ' '.repeat(63 - ((header.length + 10) % 64)) + '\n';  // the whole header a multiple of 64 bytes
  const out = new Uint8Array(10 + header.length + bytes.byteLength);
  out.set([0x93, 78, 85, 77, 80, 89, 1, 0, header.length & 255, header.length >> 8]);  // \x93NUMPY, version 1.0, header length
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), 10 + header.length);
  return out;
}

function text(value) {  // a numpy unicode scalar: UTF-32LE
  const codes = new Uint32Array([...value].map((c) => c.codePointAt(0)));
  return npy(`<U${codes.length}`, [], codes);
}

function offerTake() {
  const count = take.findIndex((frame) => frame === undefined);
  const n = count < 0 ? take.length : count;  // the frames received without a gap from the first
  if (n === 0) return;
  const size = state.ready.frame_floats;
  const poses = new Float32Array(n * 165), trans = new Float64Array(n * 3), expressions = new Float64Array(n * 100);
  for (let f = 0; f < n; f++) {
    poses.set(take[f].subarray(0, 165), f * 165);
    trans.set(take[f].subarray(165, 168), f * 3);
    expressions.set(take[f].subarray(168, size), f * 100);
  }
  const archive = zipSync({
    'poses.npy': npy('<f4', [n, 165], poses),
    'trans.npy': npy('<f8', [n, 3], trans),
    'expressions.npy': npy('<f8', [n, 100], expressions),
    'betas.npy': npy('<f4', [300], new Float32Array(300)),
    'model.npy': text('smplx2020'),
    'gender.npy': text('neutral'),
    'mocap_frame_rate.npy': npy('<i4', [], new Int32Array([30])),
  }, { level: 0 });
  downloadLink.href = URL.createObjectURL(new Blob([archive], { type: 'application/zip' }));
  downloadLink.hidden = false;
  state.download = { frames: n };
}

function release() {
  if (micStream) micStream.getTracks().forEach((track) => track.stop());
  if (context) context.close();
  micStream = null; context = null;
  startButton.disabled = false;
  stopButton.disabled = true;
}

function stop() {
  stopButton.disabled = true;
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: 'end' }));
  else release();
}

startButton.addEventListener('click', start);
stopButton.addEventListener('click', stop);

let last = performance.now();
renderer.setAnimationLoop(() => {
  const now = performance.now();
  const dt = (now - last) / 1000;
  last = now;
  const newest = state.received - 1;
  if (newest >= 0 && state.ready) {
    // play at 30 fps a block behind the newest frame; catch up when the buffer grows long
    const block = state.ready.block_frames || 16;
    playhead = playhead < 0 ? Math.max(0, newest - (block - 1)) : Math.min(newest, playhead + dt * 30);
    if (newest - playhead > Math.max(3 * block, 24)) playhead = newest - block;
    const index = Math.floor(playhead);
    const frame = take[index];
    if (frame) { pose(frame); state.shown = index; }
  }
  controls.update();
  renderer.render(scene, camera);
});
