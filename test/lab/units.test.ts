import { describe, expect, it } from 'vitest';
import { ArgError, intArg, parseArgs } from '../../lab/args';
import { fsckProblems, xfsLogNeedsReplay } from '../../lab/copy-check';
import { DocumentParameterError, type LabDocument, substituteParameters } from '../../lab/documents';
import { checkLedger } from '../../lab/ledger';
import { parseRecoveryLog } from '../../lab/postgres';
import { percentile, pct, table } from '../../lab/stats';

const transfer = (id: number, amount: number) => `D ${id} 1 -${amount}\nC ${id} 2 +${amount}\n`;

describe('checkLedger', () => {
  it('holds for whole transfers', () => {
    const r = checkLedger(transfer(1, 5) + transfer(2, 7));
    expect(r).toMatchObject({ holds: true, transfers: 2, problems: [] });
  });

  it('fails when the copy ends between a debit and its credit', () => {
    const r = checkLedger(`${transfer(1, 5)}D 2 1 -7\n`);
    expect(r.holds).toBe(false);
    expect(r.problems.join()).toMatch(/transfer 2 has a debit and no credit/);
  });

  it('fails on a torn last record and on unwritten blocks', () => {
    expect(checkLedger(`${transfer(1, 5)}C 2 2 +`).problems.join()).toMatch(/torn last record/);
    expect(checkLedger(`${transfer(1, 5)}\0\0\0\0`).problems.join()).toMatch(/NUL bytes/);
  });

  it('fails when a credit does not match its debit', () => {
    expect(checkLedger('D 1 1 -5\nC 1 2 +6\n').holds).toBe(false);
  });
});

describe('xfsLogNeedsReplay', () => {
  const head = (state: string) => `xfs_logprint:\n    log tail: 10 head: 14 state: <${state}>\n\n`;
  it('a clean log needs nothing', () => {
    expect(xfsLogNeedsReplay(head('CLEAN'))).toBe(false);
  });
  it('a log covered by a freeze (superblock-only transactions) needs nothing', () => {
    const covered = `${head('DIRTY')}TRANS: tid:0x1  #items:2\nBUF: cnt:2 total:2\n\tBUF:  #regs:2   start blkno:0x0\n\tSUPER Block Buffer:\n`;
    expect(xfsLogNeedsReplay(covered)).toBe(false);
  });
  it('inode or AG items mean changes only the log holds', () => {
    const crash = `${head('DIRTY')}TRANS: tid:0x1  #items:3\nINO: cnt:2 total:2\n\tINODE: #regs:2\nBUF: cnt:2\n\tAGI Buffer: (XAGI)\n`;
    expect(xfsLogNeedsReplay(crash)).toBe(true);
  });
  it('refuses output without a log state', () => {
    expect(() => xfsLogNeedsReplay('garbage')).toThrow(/no log state/);
  });
});

describe('fsckProblems', () => {
  it('ignores what xfs_repair -n always says about a copy of a mounted xfs', () => {
    const out = [
      'Phase 1 - find and verify superblock...',
      'ALERT: The filesystem has valuable metadata changes in a log which is being',
      'ignored because the -n option was used.  Expect spurious inconsistencies',
      'which may be resolved by first mounting the filesystem to replay the log.',
      'sb_fdblocks 113358, counted 114160',
      'No modify flag set, skipping filesystem flush and exiting.',
    ].join('\n');
    expect(fsckProblems(out, 'xfs', 1)).toEqual([]);
  });
  it('keeps real xfs inconsistencies', () => {
    expect(fsckProblems('bad magic number 0x0 on inode 131\n', 'xfs', 1)).toEqual([
      'bad magic number 0x0 on inode 131',
    ]);
  });
  it('reads e2fsck by its exit code', () => {
    expect(fsckProblems('Pass 1: Checking inodes\n', 'ext4', 0)).toEqual([]);
    expect(fsckProblems('Inode 12 has illegal blocks.\n', 'ext4', 4)).toEqual([
      'Inode 12 has illegal blocks.',
    ]);
  });
});

describe('parseRecoveryLog', () => {
  it('reads crash recovery and the WAL it replayed', () => {
    const log = [
      'LOG:  database system was not properly shut down; automatic recovery in progress',
      'LOG:  redo starts at 0/1A000028',
      'LOG:  redo done at 0/1B000000 system usage: CPU: user: 0.05 s, system: 0.01 s, elapsed: 0.12 s',
    ].join('\n');
    expect(parseRecoveryLog(log)).toEqual({
      recovery: true,
      redoBytes: 0x1b000000 - 0x1a000028,
      redoMs: 120,
    });
  });
  it('a cleanly shut down copy needs no recovery', () => {
    expect(parseRecoveryLog('LOG:  database system was shut down at 2026-11-22 02:00:00 UTC\n')).toEqual({
      recovery: false,
      redoBytes: 0,
      redoMs: 0,
    });
  });
});

describe('substituteParameters (what SSM does before the agent runs a document)', () => {
  const doc: LabDocument = {
    name: 'Freeze',
    parameters: {
      ExecutionId: { allowedPattern: '^[a-z0-9-]+$' },
      Include: { default: '', allowedPattern: '^$|^/[a-z]+$' },
    },
    script: 'echo {{ ExecutionId }} {{Include}} {{ Unknown }}',
  };
  it('pastes values and defaults, leaves unknown references alone', () => {
    expect(substituteParameters(doc, { ExecutionId: ['run-1'] })).toBe('echo run-1  {{ Unknown }}');
  });
  it('refuses a value outside allowedPattern, naming it', () => {
    expect(() => substituteParameters(doc, { ExecutionId: ['x; rm -rf /'] })).toThrow(DocumentParameterError);
    expect(() => substituteParameters(doc, { ExecutionId: ['x; rm -rf /'] })).toThrow(
      /ExecutionId="x; rm -rf \/"/,
    );
  });
  it('refuses a missing required parameter and an undeclared one', () => {
    expect(() => substituteParameters(doc, {})).toThrow(/ExecutionId is required/);
    expect(() => substituteParameters(doc, { ExecutionId: ['a'], Bogus: ['b'] })).toThrow(
      /no parameter Bogus/,
    );
  });
});

describe('stats and args', () => {
  it('nearest-rank percentiles', () => {
    expect(percentile([5, 1, 4, 2, 3], 50)).toBe(3);
    expect(percentile([5, 1, 4, 2, 3], 99)).toBe(5);
    expect(percentile([], 50)).toBeUndefined();
    expect(pct(2, 3)).toBe('67% (2/3)');
    expect(table(['a', 'bb'], [['xxx', 'y']]).split('\n')[0]).toBe('| a   | bb |');
  });
  it('parses options and names bad values', () => {
    const a = parseArgs(['--n', '3', '--assert', '--fs=xfs'], { n: 'value', assert: 'flag', fs: 'value' });
    expect(intArg(a, 'n', 10, 1, 5)).toBe(3);
    expect(a.get('fs')).toBe('xfs');
    expect(() => parseArgs(['--bogus'], { n: 'value' })).toThrow(ArgError);
    expect(() => intArg(parseArgs(['--n', '0'], { n: 'value' }), 'n', 10, 1, 5)).toThrow(
      /--n 0: allowed is a whole number from 1 to 5/,
    );
  });
});
