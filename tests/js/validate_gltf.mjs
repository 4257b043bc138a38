// node validate_gltf.mjs FILE.glb: the Khronos glTF validator's report, as one JSON line.
import { validateBytes } from 'gltf-validator';
import { readFileSync } from 'fs';
const report = await validateBytes(new Uint8Array(readFileSync(process.argv[2])));
console.log(JSON.stringify({errors: report.issues.numErrors, warnings: report.issues.numWarnings, messages: report.issues.messages.slice(0, 8)}));
