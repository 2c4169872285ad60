/**
 * Frozen bases on ONNX Runtime: graft's tfjs-layers → ONNX converter, the check against tfjs, the
 * converted-model cache and the runtime session. See packages/engine/README.md ("ONNX Runtime path").
 */
export { convertLayersModel, unsupportedLayers, SUPPORTED_LAYERS, CONVERTER_VERSION, UnsupportedLayerError, type ConvertedModel, type ConvertOptions, type OutputPooling } from './convert.ts';
export { describeModel } from './graph.ts';
export { samePads } from './padding.ts';
export { openOnnxRunner, onnxRuntimeVersion, type OnnxRunner, type OnnxRunnerOptions } from './runtime.ts';
export { compareWithTfjs, relativeError, randomInputs, tfjsReference, MAX_RELATIVE_ERROR, type Equivalence } from './verify.ts';
export { prepareOnnxBase, modelChecksum, onnxCacheKey, onnxCacheFiles, type OnnxBase, type OnnxBaseRecord, type PrepareOnnxOptions } from './prepare.ts';
export { frozenRuntimeSetting, onnxRuntimeLoads, FROZEN_RUNTIME_CHOICES, type FrozenRuntime, type FrozenRuntimeChoice, type FrozenRuntimeSetting } from './frozen-runtime.ts';
