/**
 * Line charts on uPlot (canvas, ~50 kB), with the numbers also in a table under each chart so that
 * screen readers and keyboard users get them too. Colours: the Okabe–Ito palette, which stays
 * distinguishable under the common colour-vision deficiencies; validation lines are also dashed.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { fill, h } from './dom.ts';

export const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#D55E00', '#56B4E9', '#000000', '#F0E442'];

export interface Line {
  label: string;
  color: string;
  dashed?: boolean;
  values: (number | null)[];
}
export interface Marker {
  x: number;
  label: string;
}
export interface ChartSpec {
  title: string;
  yLabel: string;
  lines: Line[];
  markers?: Marker[];
  /** Fixed y range (accuracy: [0, 1]). */
  yRange?: [number, number];
}

export class LineChart {
  readonly el: HTMLElement;
  private plot: uPlot | null = null;
  private readonly canvasBox = h('div', { class: 'chart-canvas' });
  private readonly caption = h('p', { class: 'chart-caption' });
  private readonly table = h('table', { class: 'data' });
  private spec: ChartSpec | null = null;
  private readonly resize = new ResizeObserver(() => this.fit());

  constructor(title: string) {
    this.el = h('figure', { class: 'chart', 'aria-label': title },
      h('figcaption', null, title),
      this.canvasBox,
      this.caption,
      h('details', null, h('summary', null, 'Numbers'), this.table));
    this.resize.observe(this.canvasBox);
  }

  destroy(): void {
    this.resize.disconnect();
    this.plot?.destroy();
  }

  private width(): number {
    return Math.max(260, Math.floor(this.canvasBox.clientWidth || 600));
  }

  private fit(): void {
    if (this.plot && Math.abs(this.plot.width - this.width()) > 2) this.plot.setSize({ width: this.width(), height: 260 });
  }

  update(spec: ChartSpec): void {
    const points = Math.max(0, ...spec.lines.map((l) => l.values.length));
    const xs = Array.from({ length: points }, (_, i) => i + 1);
    const data = [xs, ...spec.lines.map((l) => xs.map((_, i) => l.values[i] ?? null))] as uPlot.AlignedData;
    const sameShape = this.spec && this.spec.lines.map((l) => l.label).join() === spec.lines.map((l) => l.label).join();
    this.spec = spec;
    if (this.plot && sameShape) this.plot.setData(data);
    else {
      this.plot?.destroy();
      this.plot = new uPlot(this.options(spec), data, this.canvasBox);
    }
    const drawn = spec.lines.map((l) => `${l.label}: ${l.values.filter((v) => v !== null).length}`).join(' · ');
    const phases = spec.markers?.length ? `; phases: ${spec.markers.map((m) => `${m.label} from epoch ${m.x}`).join(', ')}` : '';
    this.caption.textContent = points ? `${points} epoch${points === 1 ? '' : 's'} plotted (${drawn})${phases}` : 'No epoch finished yet.';
    fill(this.table,
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'epoch'), spec.lines.map((l) => h('th', { scope: 'col' }, l.label)))),
      h('tbody', null, xs.map((x, i) => h('tr', null, h('th', { scope: 'row' }, x), spec.lines.map((l) => h('td', null, l.values[i] == null ? '—' : l.values[i]!.toFixed(4)))))));
  }

  private options(spec: ChartSpec): uPlot.Options {
    const markers = () => this.spec?.markers ?? [];
    return {
      width: this.width(),
      height: 260,
      scales: { x: { time: false }, y: spec.yRange ? { range: spec.yRange } : { auto: true } },
      axes: [{ label: 'epoch', incrs: [1, 2, 5, 10, 20, 50, 100] }, { label: spec.yLabel, size: 56 }],
      legend: { show: true },
      cursor: { points: { size: 6 } },
      series: [
        { label: 'epoch' },
        ...spec.lines.map((l) => ({
          label: l.label,
          stroke: l.color,
          width: 2,
          dash: l.dashed ? [6, 4] : undefined,
          points: { show: true, size: 5, stroke: l.color, fill: l.color },
          spanGaps: false,
        })),
      ],
      hooks: {
        // Phase boundaries: a dotted line before the first epoch of each phase, with its name.
        draw: [
          (u: uPlot) => {
            const ctx = u.ctx;
            ctx.save();
            ctx.strokeStyle = '#555';
            ctx.fillStyle = '#333';
            ctx.setLineDash([2, 3]);
            ctx.font = `${Math.round(11 * devicePixelRatio)}px system-ui, sans-serif`;
            for (const m of markers()) {
              const x = Math.round(u.valToPos(m.x - 0.5, 'x', true));
              ctx.beginPath();
              ctx.moveTo(x, u.bbox.top);
              ctx.lineTo(x, u.bbox.top + u.bbox.height);
              ctx.stroke();
              ctx.fillText(m.label, x + 4 * devicePixelRatio, u.bbox.top + 12 * devicePixelRatio);
            }
            ctx.restore();
          },
        ],
      },
    };
  }
}
