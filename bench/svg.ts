// The chart: each weft row's paired ratio to the kernel row (the median of
// the repetitions' ratios), per column, as grouped bars around a line at
// 1.0. Hand-written SVG, no dependencies; it opens in any browser and
// renders on GitHub.
import { type ColumnKey, COLUMNS } from './columns';
import type { NetnsResult } from './netns';

export type Ratios = Record<string, Partial<Record<ColumnKey, number>>>;

const SERIES: Array<{ row: string; color: string }> = [
  { row: 'weft vxlan', color: '#1f77b4' },
  { row: 'weft udp', color: '#2ca02c' },
  { row: 'flannel-udp-like', color: '#d62728' },
  { row: 'weft host-gw', color: '#9467bd' },
  { row: 'weft vxlan+DirectRouting', color: '#ff7f0e' },
];

/** The paired medians of every row, as the chart takes them. */
export function pairedMedians(netns: NetnsResult): Ratios {
  const out: Ratios = {};
  for (const r of netns.rows) {
    out[r.row] = Object.fromEntries(Object.entries(r.paired).flatMap(([k, s]) => (s ? [[k, s.median]] : [])));
  }
  return out;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function ratioChartSvg(vsKernel: Ratios, title: string, subtitle: string, reps: number): string {
  // CPU and RSS have no kernel figure (no daemon), so no ratio to draw.
  const cols = COLUMNS.filter((c) => !c.weftOnly);
  const W = 1200;
  const H = 520;
  const m = { left: 70, right: 30, top: 96, bottom: 92 };
  const plotW = W - m.left - m.right;
  const plotH = H - m.top - m.bottom;
  const all = SERIES.flatMap((s) => cols.map((c) => vsKernel[s.row]?.[c.key])).filter((x): x is number => x !== undefined);
  // Up to 3×: past that a bar is clipped (its label gives the value), so
  // one outlier cannot flatten the bars near 1.0 that matter.
  const CAP = 3;
  const yMax = Math.min(CAP, Math.max(1.25, Math.ceil(Math.max(0, ...all) * 4) / 4));
  const y = (v: number) => m.top + plotH - (Math.min(v, yMax) / yMax) * plotH;
  const step = yMax <= 1.5 ? 0.25 : 0.5;

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${W / 2}" y="28" text-anchor="middle" font-size="18" font-weight="bold">${esc(title)}</text>`,
    `<text x="${W / 2}" y="50" text-anchor="middle" font-size="12" fill="#444">${esc(subtitle)}</text>`,
  );
  for (let v = 0; v <= yMax + 1e-9; v += step) {
    out.push(
      `<line x1="${m.left}" x2="${W - m.right}" y1="${y(v)}" y2="${y(v)}" stroke="#e4e4e4"/>`,
      `<text x="${m.left - 8}" y="${y(v) + 4}" text-anchor="end" font-size="12">${v.toFixed(2)}×</text>`,
    );
  }
  out.push(
    `<text transform="translate(18 ${m.top + plotH / 2}) rotate(-90)" text-anchor="middle" font-size="13">median ÷ kernel vxlan median</text>`,
    `<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${m.top + plotH}" stroke="#333"/>`,
    `<line x1="${m.left}" x2="${W - m.right}" y1="${m.top + plotH}" y2="${m.top + plotH}" stroke="#333"/>`,
  );

  const groupW = plotW / cols.length;
  const barW = Math.min(28, (groupW * 0.85) / SERIES.length);
  cols.forEach((c, gi) => {
    const gx = m.left + gi * groupW + (groupW - barW * SERIES.length) / 2;
    SERIES.forEach((s, si) => {
      const v = vsKernel[s.row]?.[c.key];
      const x = gx + si * barW;
      if (v === undefined) {
        out.push(`<text x="${x + barW / 2}" y="${m.top + plotH - 4}" text-anchor="middle" font-size="10" fill="#888">n/a</text>`);
        return;
      }
      const top = y(v);
      out.push(`<rect x="${x + 2}" y="${top}" width="${barW - 4}" height="${m.top + plotH - top}" fill="${s.color}"><title>${esc(`${s.row} ${c.short}: ${v.toFixed(2)}× kernel`)}</title></rect>`);
      if (v > yMax) {
        // Clipped: a white zigzag across the top says "goes on".
        const zy = top + 10;
        out.push(`<polyline points="${x + 2},${zy + 4} ${x + barW / 2},${zy - 4} ${x + barW - 2},${zy + 4}" fill="none" stroke="#fff" stroke-width="3"/>`);
      }
      out.push(`<text x="${x + barW / 2}" y="${top - 5}" text-anchor="middle" font-size="9" stroke="#fff" stroke-width="3" paint-order="stroke">${v.toFixed(2)}</text>`);
    });
    const cx = m.left + gi * groupW + groupW / 2;
    out.push(
      `<text x="${cx}" y="${m.top + plotH + 20}" text-anchor="middle" font-size="13">${esc(c.short)}</text>`,
      `<text x="${cx}" y="${m.top + plotH + 36}" text-anchor="middle" font-size="11" fill="#666">${c.better} is better</text>`,
    );
  });

  // The kernel's own level.
  out.push(
    `<line x1="${m.left}" x2="${W - m.right}" y1="${y(1)}" y2="${y(1)}" stroke="#000" stroke-width="1.5" stroke-dasharray="6 4"/>`,
    `<text x="${m.left + 6}" y="${y(1) - 6}" font-size="12" font-weight="bold" stroke="#fff" stroke-width="4" paint-order="stroke">kernel vxlan = 1.0</text>`,
  );

  // Legend, one line under the title.
  const lx0 = m.left;
  SERIES.forEach((s, i) => {
    const lx = lx0 + i * 175;
    out.push(
      `<rect x="${lx}" y="66" width="14" height="14" fill="${s.color}"/>`,
      `<text x="${lx + 20}" y="78" font-size="13">${esc(s.row)}</text>`,
    );
  });
  out.push(
    `<text x="${W / 2}" y="${H - 14}" text-anchor="middle" font-size="11" fill="#666">Medians of ${reps} paired ratios (each repetition's figure ÷ the kernel row's in the same repetition), one run, two network namespaces. Bars above ${yMax.toFixed(2)}× are clipped.</text>`,
    '</svg>',
  );
  return `${out.join('\n')}\n`;
}
