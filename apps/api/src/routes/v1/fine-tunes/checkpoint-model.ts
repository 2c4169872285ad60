/**
 * A checkpoint as a complete model. While the base is frozen a job stores head checkpoints (the
 * head's weights and a reference to the base; `@graft/engine/head-checkpoint`) beside one complete
 * template bundle; the first download or prediction of such a checkpoint assembles its model and
 * stores it beside the checkpoint (`<ck>.model.zip`), so later requests read it as is. Other
 * checkpoints are complete models already.
 */
import { mkdir } from 'node:fs/promises';
import { dirname, posix } from 'node:path';
import { assembleHeadCheckpoint, readHeadCheckpointManifest } from '@graft/engine/head-checkpoint';
import type { Storage } from '@graft/storage';

export async function checkpointModelKey(storage: Storage, key: string): Promise<string> {
  const pulled = await storage.pull(key);
  let manifest: Awaited<ReturnType<typeof readHeadCheckpointManifest>>;
  try {
    manifest = await readHeadCheckpointManifest(pulled.path);
  } finally {
    pulled.release();
  }
  if (!manifest) return key;
  const assembledKey = key.replace(/\.zip$/, '.model.zip');
  if ((await storage.size(assembledKey)) !== null) return assembledKey;
  const checkpoint = await storage.pull(key);
  try {
    const template = await storage.pull(posix.join(posix.dirname(key), manifest.template.file));
    try {
      const tmpKey = storage.tempKey('.zip');
      await mkdir(dirname(storage.path(tmpKey)), { recursive: true });
      await assembleHeadCheckpoint(checkpoint.path, storage.path(tmpKey), template.path);
      // Concurrent requests may both assemble: the same bytes, and the last rename wins.
      await storage.commit(tmpKey, assembledKey);
    } finally {
      template.release();
    }
  } finally {
    checkpoint.release();
  }
  return assembledKey;
}
