/** A job's epochs as chart specs: training and validation, phases marked, the scratch baseline on the same axes. */
import type { EpochMetrics } from '@graft/client';
import { PALETTE, type ChartSpec, type Line, type Marker } from './charts.ts';

export function jobCurves(metrics: readonly EpochMetrics[]): { loss: ChartSpec; accuracy: ChartSpec } {
  const transfer = metrics.filter((m) => m.phase !== 'baseline');
  const baseline = metrics.filter((m) => m.phase === 'baseline');
  const markers: Marker[] = [];
  transfer.forEach((m, i) => {
    if (i === 0 || transfer[i - 1]!.phase !== m.phase) markers.push({ x: i + 1, label: m.phase });
  });
  const lines = (pick: (m: EpochMetrics) => number | null, pickVal: (m: EpochMetrics) => number | null): Line[] => {
    const out: Line[] = [
      { label: 'train', color: PALETTE[0]!, values: transfer.map(pick) },
      { label: 'validation', color: PALETTE[1]!, dashed: true, values: transfer.map(pickVal) },
    ];
    if (baseline.length) {
      out.push({ label: 'scratch train', color: PALETTE[2]!, values: baseline.map(pick) });
      out.push({ label: 'scratch validation', color: PALETTE[4]!, dashed: true, values: baseline.map(pickVal) });
    }
    return out;
  };
  return {
    loss: { title: 'Loss', yLabel: 'loss', markers, lines: lines((m) => m.loss, (m) => m.valLoss) },
    accuracy: { title: 'Accuracy', yLabel: 'accuracy', markers, yRange: [0, 1], lines: lines((m) => m.accuracy, (m) => m.valAccuracy) },
  };
}
