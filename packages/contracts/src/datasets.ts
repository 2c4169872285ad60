import { Type, type Static } from 'typebox';
import { Deleted, Literals, Page, Timestamp } from './common.ts';

export const TASKS = ['image-classification', 'text-classification'] as const;
export const Task = Literals(TASKS, { title: 'Task' });
export type Task = (typeof TASKS)[number];

/** Explicit limits on what an uploaded archive may hold (the byte limit is configuration). */
export const DATASET_LIMITS = {
  maxEntries: 100_000,
  maxClasses: 1_000,
  maxClassNameLength: 100,
  maxImageSide: 8_192,
  maxNameLength: 200,
} as const;

export const ClassStat = Type.Object(
  {
    name: Type.String(),
    index: Type.Integer({ description: 'Output index of the class (classes sorted by name).' }),
    images: Type.Integer(),
    share: Type.Number({ description: 'Fraction of all images in this class.' }),
  },
  { title: 'ClassStat' },
);

export const SkippedEntry = Type.Object({ path: Type.String(), reason: Type.String() }, { title: 'SkippedEntry' });

export const Dataset = Type.Object(
  {
    id: Type.String(),
    object: Type.Literal('dataset'),
    name: Type.String(),
    task: Task,
    bytes: Type.Integer({ description: 'Size of the uploaded archive.' }),
    sha256: Type.String(),
    imageCount: Type.Integer(),
    classes: Type.Array(ClassStat),
    balance: Type.Object({
      imbalanceRatio: Type.Number({ description: 'Images in the largest class / images in the smallest.' }),
      imbalanced: Type.Boolean({ description: 'True when the ratio exceeds 3: expect biased predictions; use class weights.' }),
    }),
    skipped: Type.Array(SkippedEntry, { description: 'Entries ignored, with the reason (at most 100 listed).' }),
    skippedCount: Type.Integer(),
    createdAt: Timestamp,
  },
  { title: 'Dataset' },
);
export type Dataset = Static<typeof Dataset>;

export const DatasetList = Page(Dataset, 'DatasetList');

/** `POST /v1/datasets` (multipart/form-data): documents the parts; the route reads them as a stream. */
export const CreateDatasetForm = Type.Object(
  {
    file: Type.String({ format: 'binary', contentMediaType: 'application/zip', description: 'A .zip whose top-level folders are class names holding JPEG/PNG images (one wrapping folder is allowed).' }),
    task: Task,
    name: Type.Optional(Type.String({ maxLength: DATASET_LIMITS.maxNameLength, description: 'Default: the file name.' })),
  },
  { title: 'CreateDatasetForm' },
);
export const DatasetDeleted = Deleted('dataset', 'DatasetDeleted');
