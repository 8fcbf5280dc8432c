#!/usr/bin/env node
// The lab's application with an invariant: every transfer is a debit record followed by a credit
// record of the same amount. Like a program using stdio, it buffers records in memory and writes the
// buffer in fixed 4 KiB blocks that ignore record boundaries, so a copy of the file taken without
// the application's cooperation usually ends inside a transfer.
//
// SIGUSR1 (pre-freeze hook): finish the current transfer, write and fsync everything, write the
// acknowledgement file, and pause until SIGUSR2 (post-thaw hook) or --max-pause-ms, whichever first,
// so a lost post-thaw hook never stops the application for good.
//
// Usage: ledger-writer.mjs --file F --ack A [--max-pause-ms 60000] [--block 4096] [--interval-ms 2]
import { dirname } from 'node:path';
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';

const args = new Map();
for (let i = 2; i < process.argv.length; i += 2)
  args.set(process.argv[i].replace(/^--/, ''), process.argv[i + 1]);
const file = args.get('file');
const ack = args.get('ack');
if (!file || !ack) {
  process.stderr.write('usage: ledger-writer.mjs --file <ledger> --ack <ack file> [--max-pause-ms N]\n');
  process.exit(2);
}
const maxPauseMs = Number(args.get('max-pause-ms') ?? 60000);
const block = Number(args.get('block') ?? 4096);
const intervalMs = Number(args.get('interval-ms') ?? 2);
const transfersPerTick = Number(args.get('per-tick') ?? 20);
// Like a log writer with periodic group syncs: data reaches the device every N blocks, but those
// syncs know nothing of transfers, so they help durability, not consistency.
const syncEvery = Number(args.get('sync-every') ?? 16);
let blocks = 0;

const fd = openSync(file, 'a');
// Like any careful application, make the file's existence durable before writing to it.
fsyncSync(fd);
const dirFd = openSync(dirname(file), 'r');
fsyncSync(dirFd);
closeSync(dirFd);
let buffer = '';
let txid = 0;
let pausedUntil = 0;
let pauseRequested = false;
let resumeTimer;

function transfer() {
  txid += 1;
  const from = txid % 17;
  const to = (txid * 7 + 3) % 17;
  const amount = 1 + ((txid * 2654435761) % 997);
  buffer += `D ${txid} ${from} -${amount}\n`;
  buffer += `C ${txid} ${to} +${amount}\n`;
  while (buffer.length >= block) {
    writeSync(fd, buffer.slice(0, block));
    buffer = buffer.slice(block);
    blocks += 1;
    if (syncEvery > 0 && blocks % syncEvery === 0) fsyncSync(fd);
  }
}

function quiesce() {
  if (buffer.length > 0) writeSync(fd, buffer);
  buffer = '';
  fsyncSync(fd);
  const tmp = `${ack}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ pid: process.pid, txid, pausedAt: new Date().toISOString() })}\n`);
  renameSync(tmp, ack);
  pausedUntil = Date.now() + maxPauseMs;
  resumeTimer = setTimeout(resume, maxPauseMs);
}

function resume() {
  clearTimeout(resumeTimer);
  pausedUntil = 0;
  rmSync(ack, { force: true });
}

// Signal handlers only set a flag: the tick below acts on it between transfers, so the pause always
// lands on a transaction boundary.
process.on('SIGUSR1', () => {
  pauseRequested = true;
});
process.on('SIGUSR2', () => {
  pauseRequested = false;
  if (pausedUntil > 0) resume();
});
process.on('SIGTERM', () => {
  if (pausedUntil === 0 && buffer.length > 0) writeSync(fd, buffer);
  closeSync(fd);
  process.exit(0);
});

function tick() {
  if (pauseRequested) {
    pauseRequested = false;
    quiesce();
  }
  if (pausedUntil === 0) for (let i = 0; i < transfersPerTick; i++) transfer();
  setTimeout(tick, intervalMs);
}
tick();
