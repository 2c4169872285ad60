/** A small seeded PRNG: the same seed gives the same split, shuffles and initial weights everywhere. */

/** A seeded stream of floats whose position can be saved and put back (a resumed job continues the same stream). */
export interface SeededRandom {
  (): number;
  /** The 32-bit state: `restore(state())` later continues exactly where this stream was. */
  state(): number;
  restore(state: number): void;
}

/** mulberry32: 32-bit state, uniform floats in [0, 1). */
export function mulberry32(seed: number): SeededRandom {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return Object.assign(next, {
    state: () => a,
    restore: (state: number) => {
      a = state >>> 0;
    },
  });
}

/** Fisher-Yates, in place. */
export function shuffleInPlace<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/** An integer seed for tfjs ops/initializers that take one, drawn from `random`. */
export function nextSeed(random: () => number): number {
  return Math.floor(random() * 2 ** 31);
}
