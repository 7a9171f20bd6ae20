// The netns table's columns, defined once for the runner, the tables, the
// ratios and the chart.

export type ColumnKey = 'tcp1' | 'tcp4' | 'udp64' | 'udp1400' | 'rttP50' | 'rttP99' | 'engineGB' | 'softirqGB' | 'busyGB' | 'rss';

export interface Column {
  key: ColumnKey;
  /** Table header. */
  label: string;
  /** Short name for the ratio tables and the chart. */
  short: string;
  unit: string;
  better: 'higher' | 'lower';
  /** Only weft rows have it (the kernel has no process of its own): no ratio. */
  weftOnly?: boolean;
  /** Measured by the UDP searches (not in the options phase). */
  udp?: boolean;
  digits: number;
}

export const COLUMNS: Column[] = [
  { key: 'tcp1', label: 'TCP 1 Gbit/s', short: 'TCP 1', unit: 'Gbit/s', better: 'higher', digits: 2 },
  { key: 'tcp4', label: 'TCP 4 Gbit/s', short: 'TCP 4', unit: 'Gbit/s', better: 'higher', digits: 2 },
  { key: 'udp64', label: 'UDP 64 B kpps', short: 'UDP 64 B', unit: 'kpps', better: 'higher', udp: true, digits: 0 },
  { key: 'udp1400', label: 'UDP 1400 B kpps', short: 'UDP 1400 B', unit: 'kpps', better: 'higher', udp: true, digits: 0 },
  { key: 'rttP50', label: 'RTT p50 ms', short: 'RTT p50', unit: 'ms', better: 'lower', digits: 3 },
  { key: 'rttP99', label: 'RTT p99 ms', short: 'RTT p99', unit: 'ms', better: 'lower', digits: 3 },
  { key: 'engineGB', label: 'engine s/GB', short: 'engine CPU', unit: 'CPU s per GB', better: 'lower', weftOnly: true, digits: 2 },
  { key: 'softirqGB', label: 'softirq s/GB', short: 'softirq CPU', unit: 'CPU s per GB', better: 'lower', digits: 2 },
  { key: 'busyGB', label: 'machine s/GB', short: 'machine CPU', unit: 'CPU s per GB', better: 'lower', digits: 2 },
  { key: 'rss', label: 'peak RSS MiB', short: 'RSS', unit: 'MiB', better: 'lower', weftOnly: true, digits: 1 },
];

export type ColumnValues = Record<ColumnKey, number | null>;
