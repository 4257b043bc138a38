// The stage both 3D views share: renderer, lights, floor, an orbiting camera with a reset, and
// the canvas sized to its box. `makeStage(box)` -> { scene, camera, renderer, controls }.
import * as THREE from 'three';
import { OrbitControls } from 'three/addons/controls/OrbitControls.js';

export function makeStage(box, resetButton) {
  const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });  // the canvas can be read back (screenshots, tests)
  renderer.setPixelRatio(Math.min(window.devicePixelRatio, 2));
  box.appendChild(renderer.domElement);
  const scene = new THREE.Scene();
  scene.background = new THREE.Color(0xf1eff3);
  scene.add(new THREE.HemisphereLight(0xffffff, 0x8d8a94, 2.2));
  const sun = new THREE.DirectionalLight(0xffffff, 1.8);
  sun.position.set(1.5, 3, 2.5);
  scene.add(sun);
  const floor = new THREE.Mesh(new THREE.CircleGeometry(1.6, 48), new THREE.MeshStandardMaterial({ color: 0xb9b6bf, roughness: 0.95 }));
  floor.rotation.x = -Math.PI / 2;
  scene.add(floor);

  const camera = new THREE.PerspectiveCamera(35, 1, 0.05, 50);
  camera.position.set(0.6, 1.25, 3.6);
  const controls = new OrbitControls(camera, renderer.domElement);
  controls.target.set(0, 0.95, 0);
  controls.enableDamping = true;
  controls.update();
  controls.saveState();
  if (resetButton) resetButton.addEventListener('click', () => controls.reset());

  function resize() {
    const { clientWidth: w, clientHeight: h } = box;
    renderer.setSize(w, h, false);
    camera.aspect = w / Math.max(h, 1);
    camera.updateProjectionMatrix();
  }
  new ResizeObserver(resize).observe(box);
  resize();
  return { scene, camera, renderer, controls };
}
