/** What a copy of the ledger says about the application's invariant. */
export interface LedgerCheck {
  /** Every debit has its credit of the same amount, the sum is zero, and no record is torn. */
  readonly holds: boolean;
  readonly transfers: number;
  readonly bytes: number;
  /** Why the invariant fails, for the report; empty when it holds. */
  readonly problems: readonly string[];
}

const RECORD = /^([DC]) (\d+) (\d+) ([+-]\d+)$/;

/**
 * Check the ledger invariant on the bytes a restore would see. A trailing record without its newline,
 * NUL bytes (blocks allocated but never written) and a final debit without its credit all break it:
 * the application has no recovery logic, which is the point of the experiment.
 */
export function checkLedger(content: Buffer | string): LedgerCheck {
  const text = typeof content === 'string' ? content : content.toString('latin1');
  const problems: string[] = [];
  if (text.includes('\0'))
    problems.push(`${text.split('\0').length - 1} NUL bytes (unwritten blocks inside the file)`);
  const lines = text.split('\n');
  const tail = lines.pop() ?? '';
  if (tail !== '') problems.push(`torn last record: ${JSON.stringify(tail.slice(0, 40))}`);
  let sum = 0;
  let transfers = 0;
  let open: { txid: string; amount: number } | undefined;
  for (const [i, line] of lines.entries()) {
    const m = RECORD.exec(line);
    if (!m) {
      if (problems.length < 5)
        problems.push(`line ${i + 1} is not a record: ${JSON.stringify(line.slice(0, 40))}`);
      continue;
    }
    const [, kind, txid, , signed] = m;
    const amount = Number(signed);
    sum += amount;
    if (kind === 'D') {
      if (open) problems.push(`transfer ${open.txid} has a debit and no credit`);
      open = { txid, amount };
    } else {
      if (!open || open.txid !== txid || open.amount !== -amount) {
        problems.push(`credit of transfer ${txid} does not follow its debit`);
      } else transfers++;
      open = undefined;
    }
  }
  if (open) problems.push(`transfer ${open.txid} has a debit and no credit (the copy ends between them)`);
  if (sum !== 0 && problems.length === 0) problems.push(`balances sum to ${sum}, not 0`);
  return { holds: problems.length === 0 && sum === 0, transfers, bytes: text.length, problems };
}
