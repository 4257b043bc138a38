// The 3D view of a generated gesture: the glTF the app exported (the same body the videos draw),
// played in sync with the speech. The audio element is the clock: every frame shows the pose at
// the audio's current time, so play, pause and scrubbing are the audio's own controls and the
// motion cannot drift from the speech.
//   viewer.html?motion=<.glb url>&audio=<.wav url>   (relative URLs are the embedding page's)
import * as THREE from 'three';
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';
import { makeStage } from './stage.js';

const params = new URLSearchParams(location.search);
const base = window.parent !== window ? window.parent.location.href : location.href;
const resolve = (url) => new URL(url, base).href;
const status = document.getElementById('status');
const audio = document.getElementById('speech');
const { scene, camera, renderer, controls } = makeStage(document.getElementById('view'), document.getElementById('reset'));

// A slider change reloads this page with new motion for the same speech: keep the place.
const placeKey = 'granumamba-view:' + params.get('audio');
window.addEventListener('pagehide', () => sessionStorage.setItem(placeKey, JSON.stringify({ t: audio.currentTime, playing: !audio.paused })));

const state = { loaded: false, frames: 0, duration: 0, time: 0, error: null };
window.viewerState = state;  // read by the browser tests
let mixer = null;

if (params.get('audio')) audio.src = resolve(params.get('audio'));
new GLTFLoader().load(resolve(params.get('motion')), (gltf) => {
  scene.add(gltf.scene);
  const clip = gltf.animations[0];
  mixer = new THREE.AnimationMixer(gltf.scene);
  mixer.clipAction(clip).play();
  state.duration = clip.duration;
  state.frames = clip.tracks[0].times.length;
  state.loaded = true;
  status.textContent = '';
  const place = JSON.parse(sessionStorage.getItem(placeKey) || 'null');
  if (place) audio.currentTime = place.t;
  if (!place || place.playing) audio.play().catch(() => { status.textContent = 'press play to start'; });
}, undefined, (err) => { state.error = String(err); status.textContent = 'the motion could not be loaded: ' + err; });

renderer.setAnimationLoop(() => {
  if (mixer) {
    state.time = Math.min(audio.currentTime, state.duration);
    mixer.setTime(state.time);
  }
  controls.update();
  renderer.render(scene, camera);
});
