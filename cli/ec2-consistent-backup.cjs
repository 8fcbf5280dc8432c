#!/usr/bin/env node
'use strict';
// The command-line tool's launcher: runs cli/main.ts through the tsx in this package's own
// node_modules (a dependency, installed by npm ci), so no global tsx and no build step are needed.

const path = require('node:path');
const { register } = require('tsx/cjs/api');
register();
// What every local tool loads first on Node 20 (sim/local-node.ts: the SDK's Node-version notice off).
require(path.join(__dirname, '..', 'sim', 'local-node.ts'));
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
