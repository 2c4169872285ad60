/**
 * A V8 CPU profile (`node --cpu-prof`, a `.cpuprofile`) → folded stacks → a flame graph as one
 * self-contained SVG (root at the bottom, width = share of samples, hover shows the frame and its
 * share). Small on purpose: enough to see where an API request's time goes, no dependency.
 */
interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
export interface CpuProfile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

const MAX_DEPTH = 60;
const ROOT_DIR = new URL('../../', import.meta.url).href;

/** "name (file:line)" with the repository prefix and node_modules' path shortened. */
function frameName(f: CallFrame): string {
  const name = f.functionName || '(anonymous)';
  if (!f.url) return name;
  let file = f.url.startsWith(ROOT_DIR) ? f.url.slice(ROOT_DIR.length) : f.url.replace(/^file:\/\//, '');
  const nm = file.lastIndexOf('node_modules/');
  if (nm >= 0) file = file.slice(nm + 'node_modules/'.length);
  return `${name} (${file}:${f.lineNumber + 1})`;
}

/** Folded stacks: "root;child;leaf" → sample count. Idle and GC time kept as their own frames. */
export function foldStacks(p: CpuProfile): Map<string, number> {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const stackOf = new Map<number, string>();
  const stack = (id: number): string => {
    const known = stackOf.get(id);
    if (known !== undefined) return known;
    const frames: string[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const name = frameName(byId.get(at)!.callFrame);
      if (name !== '(root)') frames.push(name);
    }
    const s = frames.reverse().join(';');
    stackOf.set(id, s);
    return s;
  };
  const folded = new Map<string, number>();
  for (const id of p.samples) {
    const s = stack(id);
    folded.set(s, (folded.get(s) ?? 0) + 1);
  }
  return folded;
}

interface Tree { name: string; value: number; children: Map<string, Tree> }

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Warm colours by a hash of the name (stable across runs), grey for idle and GC. */
function colour(name: string): string {
  if (name.startsWith('(idle)') || name.startsWith('(program)')) return 'rgb(200,200,200)';
  if (name.startsWith('(garbage collector)')) return 'rgb(120,160,220)';
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
  const node = name.includes('node:') || !name.includes('(') ? 0 : 1;
  return `rgb(${205 + (h % 50)},${node ? 80 + ((h >> 8) % 120) : 140 + ((h >> 8) % 80)},${(h >> 16) % 55})`;
}

export function cpuProfileToSvg(p: CpuProfile, opts: { title: string; width?: number }): string {
  const folded = foldStacks(p);
  const root: Tree = { name: 'all', value: 0, children: new Map() };
  for (const [stack, count] of folded) {
    root.value += count;
    let at = root;
    // Recursion folded (a frame repeating its caller counts once) and stacks cut at MAX_DEPTH, so a
    // deep recursive parser does not make the graph thousands of rows tall.
    const frames = (stack ? stack.split(';') : ['(root)']).filter((f, i, all) => i === 0 || f !== all[i - 1]).slice(0, MAX_DEPTH);
    for (const frame of frames) {
      let next = at.children.get(frame);
      if (!next) at.children.set(frame, (next = { name: frame, value: 0, children: new Map() }));
      next.value += count;
      at = next;
    }
  }
  const width = opts.width ?? 1600;
  const row = 16;
  let depth = 0;
  const rects: string[] = [];
  const total = root.value;
  const draw = (t: Tree, x: number, level: number) => {
    const w = (t.value / total) * (width - 20);
    if (w < 1) return; // narrower than a pixel: folded into its parent's width
    depth = Math.max(depth, level);
    const share = ((t.value / total) * 100).toFixed(2);
    const label = w > 40 ? escape(t.name.slice(0, Math.floor(w / 6.5))) : '';
    rects.push(`<g><title>${escape(t.name)} — ${t.value} samples, ${share} %</title><rect x="${(10 + x).toFixed(1)}" y="LEVEL${level}" width="${w.toFixed(1)}" height="${row - 1}" fill="${colour(t.name)}" rx="1"/>` +
      (label ? `<text x="${(13 + x).toFixed(1)}" y="TEXT${level}">${label}</text>` : '') + '</g>');
    let cx = x;
    for (const c of [...t.children.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      draw(c, cx, level + 1);
      cx += (c.value / total) * (width - 20);
    }
  };
  draw(root, 0, 0);
  const height = (depth + 1) * row + 60;
  const y = (level: number) => height - 20 - (level + 1) * row;
  const body = rects.join('\n').replace(/LEVEL(\d+)/g, (_, l) => String(y(Number(l)))).replace(/TEXT(\d+)/g, (_, l) => String(y(Number(l)) + row - 4));
  const seconds = ((p.endTime - p.startTime) / 1e6).toFixed(1);
  return `<?xml version="1.0" standalone="no"?>
<svg version="1.1" width="${width}" height="${height}" xmlns="http://www.w3.org/2000/svg" font-family="Verdana, sans-serif" font-size="11">
<rect width="100%" height="100%" fill="#fdfdf6"/>
<text x="${width / 2}" y="24" text-anchor="middle" font-size="16">${escape(opts.title)}</text>
<text x="${width / 2}" y="42" text-anchor="middle" fill="#555">${total} samples over ${seconds} s; width = share of samples; hover a frame for its share</text>
${body}
</svg>
`;
}

/** The heaviest frames by self samples (leaf of a stack), for RESULTS.md. */
export function topSelf(p: CpuProfile, n: number): { name: string; share: number }[] {
  const folded = foldStacks(p);
  const self = new Map<string, number>();
  let total = 0;
  for (const [stack, count] of folded) {
    const leaf = stack.split(';').at(-1) ?? '(root)';
    self.set(leaf, (self.get(leaf) ?? 0) + count);
    total += count;
  }
  return [...self].sort((a, b) => b[1] - a[1]).slice(0, n).map(([name, count]) => ({ name, share: count / total }));
}

/** Share of samples whose stack contains a frame matching `pattern` (inclusive time). */
export function inclusiveShare(p: CpuProfile, pattern: RegExp): number {
  let hit = 0;
  let total = 0;
  for (const [stack, count] of foldStacks(p)) {
    total += count;
    if (stack.split(';').some((f) => pattern.test(f))) hit += count;
  }
  return hit / total;
}
