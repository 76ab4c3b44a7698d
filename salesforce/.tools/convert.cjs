#!/usr/bin/env node
// Convert the SFDX project (source format) to Metadata API format with Salesforce's own
// source-deploy-retrieve library, the code `sf project deploy start` runs before it uploads anything.
//
//   node salesforce/.tools/convert.cjs PROJECT_DIR OUTPUT_DIR
//
// Prints one JSON object on stdout: {"apiVersion", "components": [{"type", "fullName", "parent"}],
// "outputFiles": [...], "unclaimed": [...]}. Exits 1 (with the error on stderr) if SDR refuses a file or
// the conversion fails; any source file no component claims is listed in "unclaimed" (a file SDR would
// silently leave out of the deploy).
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { ComponentSet, MetadataConverter } = require('@salesforce/source-deploy-retrieve');

function walk(dir) {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...walk(full));
    else out.push(full);
  }
  return out;
}

async function main() {
  const [projectDir, outputDir] = process.argv.slice(2);
  if (!projectDir || !outputDir) {
    throw new Error('usage: convert.cjs PROJECT_DIR OUTPUT_DIR');
  }
  const project = JSON.parse(fs.readFileSync(path.join(projectDir, 'sfdx-project.json'), 'utf8'));
  const packageDirs = project.packageDirectories.map((p) => path.resolve(projectDir, p.path));
  const components = ComponentSet.fromSource(packageDirs);
  // The project's own API version (without it SDR asks the CLI's config and the network for one).
  components.sourceApiVersion = project.sourceApiVersion;
  components.apiVersion = project.sourceApiVersion;

  const claimed = new Set();
  const listed = [];
  for (const component of components.getSourceComponents()) {
    for (const c of [component, ...component.getChildren()]) {
      listed.push({ type: c.type.name, fullName: c.fullName, parent: c.parent ? c.parent.fullName : null });
      if (c.xml) claimed.add(path.resolve(c.xml));
      if (c.content) {
        const content = path.resolve(c.content);
        if (fs.statSync(content).isDirectory()) walk(content).forEach((f) => claimed.add(f));
        else claimed.add(content);
      }
    }
  }
  const unclaimed = packageDirs
    .flatMap((dir) => walk(dir))
    .map((f) => path.resolve(f))
    .filter((f) => !claimed.has(f))
    .map((f) => path.relative(projectDir, f));

  await new MetadataConverter().convert(components, 'metadata', {
    type: 'directory',
    outputDirectory: outputDir,
    genUniqueDir: false,
  });
  const outputFiles = walk(outputDir).map((f) => path.relative(outputDir, f)).sort();
  listed.sort((a, b) => (a.type + a.fullName).localeCompare(b.type + b.fullName));
  process.stdout.write(
    JSON.stringify({ apiVersion: project.sourceApiVersion, components: listed, outputFiles, unclaimed }) + '\n',
  );
}

main().then(
  () => process.exit(0), // SDR's logger keeps timers alive; the work is done
  (error) => {
    process.stderr.write(`${error.name || 'Error'}: ${error.message}\n`);
    process.exit(1);
  },
);
