import assert from 'node:assert/strict';
import { test } from 'node:test';
import { stratifiedSplit } from '../src/data/split.ts';

// Examples as the image task reads them: id = the archive path, label = the class's index (classes sorted).
const images = (counts: Record<string, number>) =>
  Object.keys(counts).flatMap((className, label) => Array.from({ length: counts[className]! }, (_, i) => ({ id: `${className}/${i}.png`, label })));

test('the split is stratified: round(n x fraction) of each class held out, at least 1, never the last image', () => {
  const classes = ['a', 'b', 'c', 'd', 'e'];
  const split = stratifiedSplit(images({ a: 50, b: 10, c: 3, d: 2, e: 1 }), classes, 0.2, 1);
  assert.deepEqual(split.counts, [
    { name: 'a', train: 40, validation: 10 },
    { name: 'b', train: 8, validation: 2 },
    { name: 'c', train: 2, validation: 1 },
    { name: 'd', train: 1, validation: 1 },
    { name: 'e', train: 1, validation: 0 },
  ]);
  const count = (list: { label: number }[], label: number) => list.filter((i) => i.label === label).length;
  classes.forEach((_, label) => {
    assert.equal(count(split.train, label), split.counts[label]!.train);
    assert.equal(count(split.validation, label), split.counts[label]!.validation);
  });
  const all = [...split.train, ...split.validation].map((i) => i.id).sort();
  assert.deepEqual(all, images({ a: 50, b: 10, c: 3, d: 2, e: 1 }).map((i) => i.id).sort(), 'every image exactly once');
  for (const img of [...split.train, ...split.validation]) assert.equal(classes[img.label], img.id.split('/')[0]);
});

test('the split depends only on the seed and the set of ids', () => {
  const list = images({ cat: 30, dog: 20 });
  const a = stratifiedSplit(list, ['cat', 'dog'], 0.25, 7);
  const b = stratifiedSplit([...list].reverse(), ['cat', 'dog'], 0.25, 7);
  assert.deepEqual(a, b, 'same seed, archive order reversed → same split');
  const c = stratifiedSplit(list, ['cat', 'dog'], 0.25, 8);
  assert.notDeepEqual(a.validation, c.validation, 'another seed → another split');
  assert.deepEqual(c.counts, a.counts);
});
