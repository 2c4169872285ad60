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

/**
 * Bounds on what any uploaded archive (an image dataset zip; a gzipped or zipped text file) may
 * inflate to, checked from the zip's central directory before anything is inflated and again while
 * inflating (headers can lie). The API takes each from its environment (ARCHIVE_*).
 */
export const ARCHIVE_LIMITS = {
  /** Entries in a zip (directories included). */
  maxEntries: DATASET_LIMITS.maxEntries as number,
  /** Bytes of everything inflated from one upload. */
  maxInflatedBytes: 4 * 1024 * 1024 * 1024,
  /** Inflated ÷ compressed bytes, per entry and for the whole upload. */
  maxRatio: 200,
  /** Below this many inflated bytes an entry (or upload) is not held to maxRatio (a blank file compresses 1000:1). */
  ratioFloorBytes: 1024 * 1024,
};
export type ArchiveLimits = typeof ARCHIVE_LIMITS;

/**
 * Explicit limits of a text dataset (CSV or JSONL). Characters are Unicode code points. A row over a
 * per-row limit is an invalid row (listed, and skipped when the upload allows it); over a per-file
 * limit the upload is refused.
 */
export const TEXT_DATASET_LIMITS = {
  /** Rows in the file, valid or not. */
  maxRows: 1_000_000,
  /** Distinct labels. */
  maxClasses: DATASET_LIMITS.maxClasses,
  /** Characters of one label (after trimming). */
  maxLabelLength: DATASET_LIMITS.maxClassNameLength,
  /** Characters of one text. */
  maxTextLength: 20_000,
  /** Bytes of one CSV record or JSONL line, before decoding (a CSV record past it is fatal: an unclosed quote). */
  maxRecordBytes: 1024 * 1024,
  /** Bytes after gunzip / unzip (a bound on compression bombs). */
  maxDecompressedBytes: 4 * 1024 * 1024 * 1024,
  /** Invalid rows stored and listed with the dataset (all are counted). */
  listedInvalidRows: 100,
  /** Duplicate groups given as examples. */
  listedDuplicateExamples: 10,
} as const;
export type TextDatasetLimits = { readonly [K in keyof typeof TEXT_DATASET_LIMITS]: number };

export const ClassStat = Type.Object(
  {
    name: Type.String(),
    index: Type.Integer({ description: 'Output index of the class (classes sorted by name).' }),
    images: Type.Integer(),
    share: Type.Number({ description: 'Fraction of all images in this class.' }),
  },
  { title: 'ClassStat' },
);

export const TextClassStat = Type.Object(
  {
    name: Type.String(),
    index: Type.Integer({ description: 'Output index of the class (labels sorted by name).' }),
    rows: Type.Integer(),
    share: Type.Number({ description: 'Fraction of all valid rows with this label.' }),
  },
  { title: 'TextClassStat' },
);

export const SkippedEntry = Type.Object({ path: Type.String(), reason: Type.String() }, { title: 'SkippedEntry' });

export const Balance = Type.Object(
  {
    imbalanceRatio: Type.Number({ description: 'Examples in the largest class / examples in the smallest.' }),
    imbalanced: Type.Boolean({ description: 'True when the ratio exceeds 3: expect biased predictions; use class weights.' }),
  },
  { title: 'Balance' },
);

export const ImageDataset = Type.Object(
  {
    id: Type.String(),
    object: Type.Literal('dataset'),
    name: Type.String(),
    task: Type.Literal('image-classification'),
    bytes: Type.Integer({ description: 'Size of the uploaded archive.' }),
    sha256: Type.String(),
    imageCount: Type.Integer(),
    classes: Type.Array(ClassStat),
    balance: Balance,
    skipped: Type.Array(SkippedEntry, { description: 'Entries ignored, with the reason (at most 100 listed).' }),
    skippedCount: Type.Integer(),
    createdAt: Timestamp,
  },
  { title: 'ImageDataset' },
);
export type ImageDataset = Static<typeof ImageDataset>;

export const INVALID_ROW_CODES = [
  'invalid_utf8',
  'malformed_record',
  'malformed_json',
  'missing_text',
  'empty_text',
  'text_too_long',
  'missing_label',
  'label_too_long',
] as const;
export type InvalidRowCode = (typeof INVALID_ROW_CODES)[number];

export const InvalidRow = Type.Object(
  {
    line: Type.Integer({ description: 'Physical line where the record starts, 1-based, counting the header.' }),
    code: Literals(INVALID_ROW_CODES),
    reason: Type.String(),
  },
  { title: 'InvalidRow' },
);
export type InvalidRow = Static<typeof InvalidRow>;

export const TextFormat = Type.Object(
  {
    type: Literals(['csv', 'jsonl']),
    compression: Literals(['none', 'gzip', 'zip'], { description: '`zip`: the file was the single file of a zip (it may itself be gzipped).' }),
    entry: Type.Union([Type.String(), Type.Null()], { description: 'Name of the file inside the zip.' }),
    delimiter: Type.Union([Type.String(), Type.Null()], { description: 'CSV field delimiter found in the header line.' }),
    bom: Type.Boolean({ description: 'The file started with a UTF-8 byte order mark (ignored).' }),
  },
  { title: 'TextFormat' },
);
export type TextFormat = Static<typeof TextFormat>;

export const Percentiles = Type.Object(
  {
    p5: Type.Number(),
    p50: Type.Number(),
    p95: Type.Number(),
    max: Type.Number(),
    mean: Type.Number(),
  },
  { title: 'Percentiles' },
);
export type Percentiles = Static<typeof Percentiles>;

export const TokenStats = Type.Object(
  {
    ...Percentiles.properties,
    baseModel: Type.String({ description: 'The text base whose tokenizer counted.' }),
    maxLength: Type.Integer({ description: "The base's maximum sequence length, in tokens." }),
    overMaxLength: Type.Integer({ description: 'Rows with more tokens than maxLength: they will be truncated.' }),
  },
  { title: 'TokenStats' },
);
export type TokenStats = Static<typeof TokenStats>;

export const DuplicateGroup = Type.Object(
  {
    text: Type.String({ description: 'The text (first occurrence, at most 200 characters).' }),
    count: Type.Integer({ description: 'Rows holding this text.' }),
    lines: Type.Array(Type.Integer(), { description: 'Their lines (at most 10).' }),
    labels: Type.Array(Type.String(), { description: 'Distinct labels given to it.' }),
    conflicting: Type.Boolean({ description: 'The same text carries different labels.' }),
  },
  { title: 'DuplicateGroup' },
);

export const Duplicates = Type.Object(
  {
    rows: Type.Integer({ description: 'Rows whose text already appeared on an earlier row.' }),
    texts: Type.Integer({ description: 'Distinct texts that appear on more than one row.' }),
    conflictingTexts: Type.Integer({ description: 'Distinct texts that appear with more than one label.' }),
    examples: Type.Array(DuplicateGroup, { description: 'The first repeated texts, by line.' }),
    conflicts: Type.Array(DuplicateGroup, { description: 'The first texts with conflicting labels, by line.' }),
  },
  { title: 'Duplicates' },
);
export type Duplicates = Static<typeof Duplicates>;

export const TextStats = Type.Object(
  {
    characters: Percentiles,
    tokens: Type.Union([TokenStats, Type.Null()], { description: 'In tokens of `baseModel`; null when no text base was named and none is in the catalog.' }),
  },
  { title: 'TextStats' },
);
export type TextStats = Static<typeof TextStats>;

export const TextDataset = Type.Object(
  {
    id: Type.String(),
    object: Type.Literal('dataset'),
    name: Type.String(),
    task: Type.Literal('text-classification'),
    bytes: Type.Integer({ description: 'Size of the uploaded file.' }),
    sha256: Type.String(),
    format: TextFormat,
    rowCount: Type.Integer({ description: 'Valid rows: the examples training will use.' }),
    classes: Type.Array(TextClassStat),
    balance: Balance,
    textStats: TextStats,
    duplicates: Duplicates,
    invalidRows: Type.Array(InvalidRow, { description: 'Rows skipped, with line and reason (at most 100 listed).' }),
    invalidRowCount: Type.Integer(),
    invalidShare: Type.Number({ description: 'Invalid rows / all rows.' }),
    maxInvalidShare: Type.Number({ description: 'The share of invalid rows this upload allowed.' }),
    createdAt: Timestamp,
  },
  { title: 'TextDataset' },
);
export type TextDataset = Static<typeof TextDataset>;

/** A dataset: images or texts, told apart by `task`. */
export const Dataset = Type.Union([ImageDataset, TextDataset], { title: 'Dataset' });
export type Dataset = Static<typeof Dataset>;

export const DatasetList = Page(Dataset, 'DatasetList');

/** The form fields of `POST /v1/datasets` (multipart, next to the `file` part). */
export const UploadDatasetFields = Type.Object(
  {
    task: Task,
    name: Type.Optional(Type.String({ minLength: 1, maxLength: DATASET_LIMITS.maxNameLength })),
    maxInvalidShare: Type.Optional(
      Type.Number({ minimum: 0, maximum: 1, description: 'Text only. Refuse the upload (422) when more than this share of rows is invalid, else skip and list them. Default 0.' }),
    ),
    baseModel: Type.Optional(
      Type.String({ minLength: 1, maxLength: 80, description: "Text only. The text base whose tokenizer counts the tokens in `textStats` (default: graft's own text encoder when the catalog has it)." }),
    ),
  },
  { additionalProperties: false },
);
export type UploadDatasetFields = Static<typeof UploadDatasetFields>;

/** `POST /v1/datasets` (multipart/form-data): documents the parts; the route reads them as a stream. */
export const CreateDatasetForm = Type.Object(
  {
    file: Type.String({
      format: 'binary',
      description:
        'image-classification: a .zip whose top-level folders are class names holding JPEG/PNG images (one wrapping folder is allowed). ' +
        'text-classification: a CSV (header with `text` and `label`) or JSON Lines file, plain, gzipped, or the single file of a zip.',
    }),
    ...UploadDatasetFields.properties,
    name: Type.Optional(Type.String({ minLength: 1, maxLength: DATASET_LIMITS.maxNameLength, description: 'Default: the file name.' })),
  },
  { title: 'CreateDatasetForm' },
);
export const DatasetDeleted = Deleted('dataset', 'DatasetDeleted');

/** A few examples of each class, for people to look at (`GET /v1/datasets/{id}/samples`). */
export const DatasetSample = Type.Object(
  {
    class: Type.String(),
    source: Type.String({ description: 'Where it is in the upload: the path inside the zip, or `line N` of the text file.' }),
    image: Type.Union([Type.String(), Type.Null()], { description: 'Images: the file as a `data:` URI.' }),
    text: Type.Union([Type.String(), Type.Null()], { description: 'Texts: the text (at most 500 characters, then …).' }),
  },
  { title: 'DatasetSample' },
);
export type DatasetSample = Static<typeof DatasetSample>;
export const DatasetSampleList = Type.Object({ data: Type.Array(DatasetSample, { description: 'Classes in output order; within a class, images by path and texts by line.' }) }, { title: 'DatasetSampleList' });
export const DatasetSamplesQuery = Type.Object(
  { perClass: Type.Optional(Type.Integer({ minimum: 1, maximum: 32, default: 8, description: 'Examples per class.' })) },
  { additionalProperties: false },
);
