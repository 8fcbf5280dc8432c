#!/usr/bin/env node
'use strict';
// The command-line tool's launcher: runs cli/main.ts through the tsx in this package's own
// node_modules (a dependency, installed by npm ci), so no global tsx and no build step are needed.

// The SDK warns that its releases after January 2027 need Node 22; this tool runs on the Node the
// project supports (20+), and the warning is no action for an operator. Every other warning stays.
const defaultWarning = process.listeners('warning');
process.removeAllListeners('warning');
process.on('warning', (warning) => {
  if (/NodeVersionSupportWarning/.test(`${warning.name} ${warning.message}`)) return;
  for (const listener of defaultWarning) listener(warning);
});

const path = require('node:path');
const { register } = require('tsx/cjs/api');
register();
const { runCli } = require(path.join(__dirname, 'main.ts'));
runCli(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(`ec2-consistent-backup: ${err?.stack ?? err}`);
    process.exitCode = 5;
  },
);
