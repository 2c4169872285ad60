/**
 * The confusion matrix as a heatmap: each cell coloured by its share of the true class's row on the
 * viridis scale (perceptually uniform, readable with colour-vision deficiencies and in greyscale),
 * with the count written in it. Per-class precision, recall and F1 in a table beside it.
 */
import type { FineTuneResult } from '@graft/client';
import { h, num } from './dom.ts';

// viridis at 0, 0.25, 0.5, 0.75, 1
const STOPS: [number, number, number][] = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

export function viridis(t: number): string {
  const x = Math.min(1, Math.max(0, t)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x));
  const f = x - i;
  const [a, b] = [STOPS[i]!, STOPS[i + 1]!];
  const c = a.map((v, k) => Math.round(v + (b[k]! - v) * f));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

export function confusionHeatmap(classes: readonly string[], matrix: readonly (readonly number[])[]): HTMLElement {
  return h('div', { class: 'table-wrap' }, h('table', { class: 'heatmap', 'aria-label': 'Confusion matrix: rows are true classes, columns predicted' },
    h('thead', null, h('tr', null, h('th', { scope: 'col', class: 'corner' }, 'true ↓ predicted →'), classes.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', null, matrix.map((row, i) => {
      const total = row.reduce((a, b) => a + b, 0);
      return h('tr', null, h('th', { scope: 'row' }, classes[i] ?? String(i)), row.map((n, j) => {
        const share = total ? n / total : 0;
        return h('td', {
          class: `cell${i === j ? ' diagonal' : ''}`,
          style: { background: viridis(share), color: share > 0.55 ? '#000' : '#fff' },
          title: `true ${classes[i]}, predicted ${classes[j]}: ${n} (${(share * 100).toFixed(0)} % of the row)`,
          'data-count': n,
        }, n);
      }));
    }))));
}

export function perClassTable(perClass: FineTuneResult['perClass']): HTMLElement {
  return h('div', { class: 'table-wrap' }, h('table', { class: 'per-class' },
    h('thead', null, h('tr', null, ['Class', 'Support', 'Precision', 'Recall', 'F1'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', null, perClass.map((c) => h('tr', null, h('th', { scope: 'row' }, c.name), h('td', { class: 'num' }, c.support), h('td', { class: 'num' }, num(c.precision)), h('td', { class: 'num' }, num(c.recall)), h('td', { class: 'num' }, num(c.f1)))))));
}
