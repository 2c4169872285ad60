/**
 * What identifies a base's weights, for cache keys: never a local path alone, so a cache entry is
 * reused exactly when the weights are the same.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { isAbsolute, join, normalize } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import type { ResolvedBase } from './base-source.ts';

/**
 * The content hash of a directory's model.json and weight files or of a model zip; the package and
 * model of an nsfwjs source; the URL (and its sha256 when given) of a hosted model.
 */
export async function sourceIdentity(base: ResolvedBase): Promise<string> {
  const { source, descriptor } = base;
  switch (source.kind) {
    case 'directory': {
      const hash = createHash('sha256');
      // An ONNX text encoder's folder has no model.json: every file it keeps (model.onnx, config.json, tokenizer files).
      if (descriptor.format === 'onnx') {
        for (const name of (await readdir(source.dir)).sort()) {
          hash.update(name).update('\0');
          await hashFile(hash, join(source.dir, name));
        }
        return `directory:sha256:${hash.digest('hex')}`;
      }
      const modelJson = await readFile(join(source.dir, 'model.json'));
      hash.update(modelJson);
      const parsed = JSON.parse(modelJson.toString('utf8')) as tf.io.ModelJSON;
      for (const group of parsed.weightsManifest ?? []) {
        for (const p of group.paths) {
          const rel = normalize(p);
          if (isAbsolute(rel) || rel.startsWith('..')) throw new Error(`weights path "${p}" leaves the model directory`);
          await hashFile(hash, join(source.dir, rel));
        }
      }
      return `directory:sha256:${hash.digest('hex')}`;
    }
    case 'model-zip': {
      const hash = createHash('sha256');
      await hashFile(hash, source.path);
      return `model-zip:sha256:${hash.digest('hex')}`;
    }
    case 'nsfwjs':
      return `nsfwjs:${source.model}:${descriptor.source}`;
    case 'url':
      return `url:${source.url}${source.sha256 ? `:sha256:${source.sha256}` : ''}`;
    case 'use':
      return `use:${source.modelUrl}${source.modelSha256 ? `:sha256:${source.modelSha256}` : ''}:vocab:${source.vocabUrl}`;
  }
}

async function hashFile(hash: ReturnType<typeof createHash>, path: string): Promise<void> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
}
