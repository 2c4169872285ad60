/** Errors `fineTune` throws on purpose; anything else is a bug or an environment failure. */

/** The job was cancelled through its AbortSignal. */
export class TrainingCancelled extends Error {
  constructor(message = 'Training was cancelled.') {
    super(message);
    this.name = 'TrainingCancelled';
  }
}

/**
 * A failure the user can act on (fix the dataset, lower the learning rate, pick another base). `code`
 * is stable: base_model_unavailable, dataset_too_small, training_diverged, unreadable_image, and the
 * dataset codes of `inspectArchive` (invalid_archive, unreadable_entry, no_images, too_few_classes,
 * too_many_entries), which are passed through under the same code.
 */
export class TrainingError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'TrainingError';
    this.code = code;
  }
}
