// Plain-text tables for the terminal and for bench/README.md.

/** Columns padded to their widest cell; numbers (and "-") right-aligned. */
export function textTable(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const isNum = (s: string) => /^[-+]?[\d.]/.test(s) || s === '-';
  const line = (cells: string[], header = false) =>
    cells
      .map((c, i) => (!header && i > 0 && isNum(c) ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(head, true), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map((r) => line(r))].join('\n');
}
