/**
 * tfjs graph models (converted TF SavedModels / TF Hub modules) as bases. A graph model has no
 * layers and, in tfjs, no gradients through its frozen ops' constants: it can only be a frozen
 * feature extractor run up to a named node. No TensorFlow import here beyond types.
 */
import type * as tf from '@tensorflow/tfjs';
import { TrainingError } from '../errors.ts';

export type ModelFormat = 'tfjs-layers' | 'tfjs-graph';

interface GraphNode { name: string; op: string; input?: string[]; attr?: Record<string, unknown> }

/** The format of a parsed model.json: `format` when it says, else the shape of its topology. */
export function detectModelFormat(modelJson: tf.io.ModelJSON): ModelFormat {
  const format = typeof modelJson.format === 'string' ? modelJson.format.toLowerCase() : '';
  if (format === 'graph-model') return 'tfjs-graph';
  if (format === 'layers-model') return 'tfjs-layers';
  const topology = modelJson.modelTopology as Record<string, unknown> | undefined;
  if (topology && Array.isArray(topology.node)) return 'tfjs-graph';
  if (topology && (topology.model_config || topology.class_name || topology.config)) return 'tfjs-layers';
  throw new Error('model.json is neither a tfjs layers model nor a graph model (no "format", no recognisable "modelTopology")');
}

/** The nodes of a graph model's model.json (its GraphDef), in file order. */
export function graphNodes(modelJson: tf.io.ModelJSON): GraphNode[] {
  const topology = modelJson.modelTopology as { node?: GraphNode[] } | undefined;
  return Array.isArray(topology?.node) ? topology.node : [];
}

/** "name:0" and "name" both name node "name" (output 0). */
function nodeNameOf(tensorName: string): string {
  return tensorName.replace(/:\d+$/, '');
}

/**
 * Checks that a graph node exists and can be a feature node (not a constant or the input); throws
 * TrainingError `invalid_cut_layer` naming likely candidates otherwise.
 */
export function assertFeatureNode(modelJson: tf.io.ModelJSON, node: string, code = 'invalid_cut_layer'): void {
  const nodes = graphNodes(modelJson);
  const found = nodes.find((n) => n.name === nodeNameOf(node));
  if (found && found.op !== 'Const' && found.op !== 'Placeholder') return;
  const why = found ? `is a ${found.op} node, not a computed feature` : 'is not a node of this graph model';
  throw new TrainingError(code, `"${node}" ${why}. Candidates: ${featureNodeCandidates(modelJson).slice(-6).map((n) => `"${n}"`).join(', ') || 'none found'}.`);
}

/** Nodes whose names suggest pooled or final features (for error messages). */
function featureNodeCandidates(modelJson: tf.io.ModelJSON): string[] {
  const nodes = graphNodes(modelJson).filter((n) => n.op !== 'Const' && n.op !== 'Placeholder');
  const hits = nodes.filter((n) => /feature|pool|squeeze|relu6?$|global|flatten/i.test(n.name)).map((n) => n.name);
  return hits.length ? hits : nodes.slice(-6).map((n) => n.name);
}

/** Why a graph base cannot be trained: the pipeline's plan refuses phase 2 and the scratch baseline with it (`graph_model_frozen`). */
export const GRAPH_FROZEN_MESSAGE =
  'A graph model can only be a frozen feature extractor: trainableLayers must be "none" and baseline cannot be "scratch" ' +
  '(tfjs graph models have no trainable layers and no architecture to rebuild from random weights).';

/** Runs a graph model from its single input to `node`: [batch, ...featureShape]. */
export function runGraphToNode(graph: tf.GraphModel, x: tf.Tensor, node: string): tf.Tensor {
  const input = graph.inputs[0]?.name;
  if (!input || graph.inputs.length !== 1) throw new TrainingError('invalid_base_model', `The graph model has ${graph.inputs.length} inputs; a base needs exactly one image input.`);
  const out = graph.execute({ [input]: x }, node);
  if (Array.isArray(out)) throw new TrainingError('invalid_cut_layer', `Graph node "${node}" has several outputs.`);
  return out;
}
