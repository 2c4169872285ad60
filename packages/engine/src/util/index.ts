/** Small helpers every part of the engine uses, none of them TensorFlow: a seeded PRNG, deterministic zips, content hashes. */
export { mulberry32, nextSeed, shuffleInPlace, type SeededRandom } from './random.ts';
export { openZip, readZipEntry, readZipFiles, writeZip, zipEntries, type ZipEntry, type ZipFile, type ZipInput } from './zip.ts';
export { canonicalJson, sha256File } from './hash.ts';
