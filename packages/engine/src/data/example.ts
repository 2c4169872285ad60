/**
 * One labelled example of a dataset, whatever the task: `id` is stable and unique within its
 * dataset (an image's path in the archive; a text row's line number), `label` the index of its
 * class in the dataset's class list (classes sorted by name: the model's output order).
 */
export interface Example {
  id: string;
  label: number;
}

/** Examples per class, for the split and the `dataset` event. */
export interface ClassCount {
  name: string;
  train: number;
  validation: number;
}
