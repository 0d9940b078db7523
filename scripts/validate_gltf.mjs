// Validate glTF binaries with the Khronos glTF Validator (`make gltf-validator` installs it under .tools/):
//   node scripts/validate_gltf.mjs FILE.glb...
// Prints one JSON object, file → {errors, warnings, infos, hints, messages}; exit code 1 if any file has an error
// or a warning, 2 if the validator is not installed.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
let validator;
try {
  validator = createRequire(join(root, ".tools", "gltf-validator", "package.json"))("gltf-validator");
} catch {
  console.error("the glTF Validator is not installed: run `make gltf-validator`");
  process.exit(2);
}

const reports = {};
let bad = false;
for (const file of process.argv.slice(2)) {
  const report = await validator.validateBytes(new Uint8Array(readFileSync(file)), { uri: file, maxIssues: 50 });
  const { numErrors, numWarnings, numInfos, numHints, messages } = report.issues;
  reports[file] = { errors: numErrors, warnings: numWarnings, infos: numInfos, hints: numHints, messages,
                    version: report.validatorVersion };
  bad ||= numErrors > 0 || numWarnings > 0;
}
console.log(JSON.stringify(reports, null, 1));
process.exit(bad ? 1 : 0);
