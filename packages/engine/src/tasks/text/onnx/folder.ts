/**
 * An ONNX text encoder's folder, in the layout Hugging Face publishes BERT-family checkpoints for
 * JavaScript: the ONNX file (`onnx/model.onnx`, else `model.onnx`, or the one the caller names),
 * `tokenizer.json` (+ `tokenizer_config.json`) and `config.json`. No onnxruntime here.
 */
import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, join, normalize, sep } from 'node:path';
import { TrainingError } from '../../../errors.ts';
import { loadTextTokenizer, TokenizerError, type TextTokenizer } from '../tokenizer.ts';

export const DEFAULT_MODEL_FILES = ['onnx/model.onnx', 'model.onnx'] as const;
export const CONFIG_FILE = 'config.json';

/** What graft reads from config.json (Hugging Face's model config); every field optional. */
export interface EncoderConfig {
  modelType: string | null;
  hiddenSize: number | null;
  maxPositionEmbeddings: number | null;
}

export interface OnnxTextFolder {
  dir: string;
  /** The ONNX file, relative to `dir` (forward slashes). */
  modelFile: string;
  modelPath: string;
  modelBytes: number;
  config: EncoderConfig;
  tokenizer: TextTokenizer;
  /** tokenizer_config.json's `model_max_length`, when it is a real limit (transformers writes 1e30 for "none"). */
  tokenizerMaxLength: number | null;
}

/**
 * A folder or graph that cannot serve as a text base (`invalid_base_model`); `param` names the
 * registration field at fault when one is (else the files are).
 */
export class InvalidTextBase extends TrainingError {
  readonly param: 'modelFile' | 'outputName' | 'maxLength' | null;
  constructor(message: string, param: InvalidTextBase['param'] = null) {
    super('invalid_base_model', message);
    this.param = param;
  }
}

const bad = (message: string, param: InvalidTextBase['param'] = null) => new InvalidTextBase(message, param);

async function fileSize(path: string): Promise<number | null> {
  try {
    const s = await stat(path);
    return s.isFile() ? s.size : null;
  } catch {
    return null;
  }
}

/** A relative path inside the folder, or an error (no absolute paths, no `..`). */
function inside(dir: string, rel: string): string {
  const n = normalize(rel);
  if (isAbsolute(n) || n === '..' || n.startsWith(`..${sep}`)) throw bad(`modelFile "${rel}" must be a path inside the folder`, 'modelFile');
  return join(dir, n);
}

const positiveInt = (v: unknown) => (typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : null);

async function readConfig(dir: string): Promise<EncoderConfig> {
  let raw: string;
  try {
    raw = await readFile(join(dir, CONFIG_FILE), 'utf8');
  } catch {
    throw bad(`the folder has no ${CONFIG_FILE} (the model's configuration, as Hugging Face publishes it next to the ONNX file)`);
  }
  let c: Record<string, unknown>;
  try {
    c = JSON.parse(raw) as Record<string, unknown>;
    if (!c || typeof c !== 'object' || Array.isArray(c)) throw new Error('not a JSON object');
  } catch (err) {
    throw bad(`${CONFIG_FILE} is not valid JSON: ${(err as Error).message}`);
  }
  return {
    modelType: typeof c.model_type === 'string' ? c.model_type : null,
    // DistilBERT names it `dim`.
    hiddenSize: positiveInt(c.hidden_size) ?? positiveInt(c.dim),
    maxPositionEmbeddings: positiveInt(c.max_position_embeddings),
  };
}

export async function readOnnxTextFolder(dir: string, opts: { modelFile?: string } = {}): Promise<OnnxTextFolder> {
  const candidates = opts.modelFile ? [opts.modelFile] : [...DEFAULT_MODEL_FILES];
  let modelFile: string | null = null;
  let modelBytes = 0;
  for (const f of candidates) {
    const size = await fileSize(inside(dir, f));
    if (size !== null) {
      modelFile = f;
      modelBytes = size;
      break;
    }
  }
  if (!modelFile) throw bad(`the folder has no ONNX model (looked for ${candidates.join(', ')})`, opts.modelFile ? 'modelFile' : null);
  const config = await readConfig(dir);
  let tokenizer: TextTokenizer;
  try {
    tokenizer = await loadTextTokenizer(dir);
  } catch (err) {
    if (err instanceof TokenizerError) throw bad(err.message.replaceAll(` in ${dir}`, '').replaceAll(`${dir}/`, ''));
    throw err;
  }
  let tokenizerMaxLength: number | null = null;
  try {
    const tc = JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8')) as { model_max_length?: unknown };
    const m = positiveInt(tc.model_max_length);
    tokenizerMaxLength = m !== null && m < 1e6 ? m : null;
  } catch {
    /* optional */
  }
  return { dir, modelFile: modelFile.split(sep).join('/'), modelPath: inside(dir, modelFile), modelBytes, config, tokenizer, tokenizerMaxLength };
}
