/**
 * The ONNX encoder of a text bundle, opened to predict: from the file in the zip, or from the file
 * the caller gives when the bundle only names it (its sha256 checked against text.json). The
 * encoder's folder (model.onnx, config.json, tokenizer files) is laid out in a temporary directory,
 * opened by ONNX Runtime (which reads the file whole) and removed. Imported only for such bundles,
 * so onnxruntime loads only when a bundle needs it.
 */
import { mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { sha256File } from '../../util/hash.ts';
import type { TextBundleEncoder, TextBundleSpec, TextPredictorOptions } from './bundle.ts';
import { openOnnxTextEncoder, type OnnxTextEncoder } from './onnx/onnx-encoder.ts';

export async function openBundledOnnxEncoder(
  spec: TextBundleSpec,
  encoder: Extract<TextBundleEncoder, { format: 'onnx' }>,
  files: ReadonlyMap<string, Uint8Array>,
  source: string,
  opts: TextPredictorOptions,
): Promise<OnnxTextEncoder> {
  const need = (name: string) => {
    const data = files.get(name);
    if (!data) throw new Error(`${source} has no ${name}`);
    return data;
  };
  const dir = await mkdtemp(join(tmpdir(), 'graft-text-bundle-'));
  try {
    await writeFile(join(dir, 'config.json'), need('encoder/config.json'));
    for (const name of spec.tokenizer.files) await writeFile(join(dir, name), need(name));
    if (encoder.file) {
      await writeFile(join(dir, 'model.onnx'), need(encoder.file));
      const data = files.get(`${encoder.file}_data`);
      if (data) await writeFile(join(dir, 'model.onnx_data'), data);
    } else {
      if (!opts.encoderPath) {
        throw new Error(
          `${source} does not hold its ONNX encoder (${encoder.bytes} bytes, over the size limit of the job): give its file as encoderPath ` +
            `(sha256 ${encoder.sha256}; from ${encoder.source}).`,
        );
      }
      const actual = await sha256File(opts.encoderPath);
      if (actual !== encoder.sha256) throw new Error(`${opts.encoderPath} is not the encoder ${source} was trained on (sha256 ${actual}, expected ${encoder.sha256}).`);
      await symlink(resolve(opts.encoderPath), join(dir, 'model.onnx'));
      const dataPath = `${resolve(opts.encoderPath)}_data`;
      if (await stat(dataPath).then((st) => st.isFile(), () => false)) await symlink(dataPath, join(dir, 'model.onnx_data'));
    }
    const pooling = spec.pooling === 'cls' ? 'cls' : 'mean';
    return await openOnnxTextEncoder(dir, { modelFile: 'model.onnx', outputName: encoder.outputName, pooling, maxLength: spec.maxLength });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
