/**
 * The image task: class-folder zip datasets, decoding and preprocessing (decode → RGB/grey →
 * bilinear resize → scale + offset), seeded augmentation, the decoded-image cache, the decode pass
 * that computes a base's features, and image bundles (`preprocessing.json`, graph bases).
 */
export { imageTask, readImageDataset } from './task.ts';
export { inspectArchive, readArchiveImages, type ArchiveImage, type ArchiveInspection } from './dataset-archive.ts';
export { readImageHeader, type ImageHeader } from './image-header.ts';
export { decodeImage, DECODE_LIMITS, featureBatchSize, imageToTensor, preprocessImage, scalePixels, type DecodeLimits, type RgbImage } from './preprocess.ts';
export { augmentBatch } from './augment.ts';
export { ImageCache, ImageCacheWriter, imageCacheFiles, imageCacheKey, imageCacheStore } from './image-cache.ts';
export { openImageEncoder } from './encoder.ts';
export { imageBundle, type GraphPipeline } from './bundle.ts';
