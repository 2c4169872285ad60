/**
 * Turns a `baseModel` id into the base's public description and where its weights are: graft's
 * catalog (`bm_…` built in), a base a user registered (`bm_…` in the database), or a succeeded
 * fine-tune (`ft_…`: its model, cut below its head). No TensorFlow here; callers pass lookups so
 * the engine stays free of databases.
 */
import type { BaseModel } from '@graft/contracts';
import type { ResolvedBase } from './base-source.ts';
import { resolveCatalogBase } from './catalog.ts';

export interface UserBaseRecord {
  model: BaseModel;
  /** Directory holding model.json and its weights. */
  dir: string;
}

export interface FineTuneRecord {
  id: string;
  status: string;
  baseModelId: string;
  cutLayer: string;
  classes: string[] | null;
  /** The model zip, when the job succeeded. */
  modelZip: string | null;
  createdAt: string;
}

export interface BaseLookups {
  userBase(id: string): Promise<UserBaseRecord | null>;
  fineTune(id: string): Promise<FineTuneRecord | null>;
}

export type BaseResolution =
  | { ok: true; base: ResolvedBase }
  | { ok: false; code: 'base_model_not_found' | 'base_model_unusable'; message: string };

const MAX_DEPTH = 16;

export async function resolveBase(id: string, lookups: BaseLookups, depth = 0): Promise<BaseResolution> {
  if (depth > MAX_DEPTH) return { ok: false, code: 'base_model_unusable', message: `The chain of fine-tunes behind ${id} is deeper than ${MAX_DEPTH}.` };
  const catalog = resolveCatalogBase(id);
  if (catalog) return { ok: true, base: catalog };
  if (id.startsWith('ft_')) {
    const ft = await lookups.fineTune(id);
    if (!ft) return { ok: false, code: 'base_model_not_found', message: `No fine-tune ${id} to start from.` };
    if (ft.status !== 'succeeded' || !ft.modelZip || !ft.classes) {
      return { ok: false, code: 'base_model_unusable', message: `Fine-tune ${id} is ${ft.status}; only a succeeded fine-tune can be a base.` };
    }
    const parent = await resolveBase(ft.baseModelId, lookups, depth + 1);
    if (!parent.ok) return parent;
    const p = parent.base.descriptor;
    if (p.format === 'tfjs-graph' || p.format === 'onnx') {
      // Its zip holds the frozen encoder (or only names it) and a head model apart; the loader opens layers models only.
      const kind = p.format === 'onnx' ? 'ONNX encoder' : 'graph model';
      return { ok: false, code: 'base_model_unusable', message: `Fine-tune ${id} was trained on the ${kind} ${p.id}; a fine-tune of a frozen-only base cannot be a base yet. Start from ${p.id} instead.` };
    }
    // Task, input shape and preprocessing are the parent's (spread keeps the image/text union intact).
    const descriptor: BaseModel = {
      ...p,
      id: ft.id,
      name: `${ft.id} (fine-tuned from ${p.id})`,
      description: `A graft fine-tune of ${p.id} for ${ft.classes.length} classes (${ft.classes.slice(0, 10).join(', ')}${ft.classes.length > 10 ? ', …' : ''}). Cut below its head; with the same classes its head is kept and training continues.`,
      format: 'tfjs-layers',
      featureLayer: ft.cutLayer,
      featureShape: ft.cutLayer === p.featureLayer ? p.featureShape : [],
      source: `graft fine-tune ${ft.id}`,
      pretrainedOn: `${p.pretrainedOn}; then fine-tuned by graft on ${ft.classes.length} classes`,
    };
    return { ok: true, base: { descriptor, source: { kind: 'model-zip', path: ft.modelZip } } };
  }
  const user = await lookups.userBase(id);
  if (user) {
    return { ok: true, base: { descriptor: user.model, source: { kind: 'directory', dir: user.dir } } };
  }
  return { ok: false, code: 'base_model_not_found', message: `No base model ${id}; see GET /v1/base-models.` };
}
