import { Type, type TSchema, type TUnsafe } from 'typebox';

export const Timestamp = Type.String({ format: 'date-time', description: 'ISO 8601, UTC' });
export const NullableTimestamp = Type.Union([Timestamp, Type.Null()]);

export const PAGE_LIMIT_DEFAULT = 20;
export const PAGE_LIMIT_MAX = 100;

/** `limit` and `after` of every list (a default is never required: the server applies it). */
export const PageFields = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: PAGE_LIMIT_MAX, default: PAGE_LIMIT_DEFAULT, description: 'Items per page.' })),
  after: Type.Optional(Type.String({ minLength: 1, maxLength: 80, description: 'Cursor: `nextCursor` of the previous page.' })),
};
export const PageQuery = Type.Object(PageFields, { additionalProperties: false });

/**
 * `{ data, hasMore, nextCursor }`: the envelope of every list. `title` names the schema in the
 * OpenAPI document (`components.schemas`).
 */
export function Page<T extends TSchema>(item: T, title: string) {
  return Type.Object(
    {
      data: Type.Array(item),
      hasMore: Type.Boolean(),
      nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `after` to get the next page; null on the last page.' }),
    },
    { title },
  );
}

export const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 80, description: 'The object id.' }) });

/** What a DELETE answers (as Stripe does): the id, its kind and `deleted: true`. */
export function Deleted<const K extends string>(object: K, title: string) {
  return Type.Object(
    { id: Type.String(), object: Type.Literal(object), deleted: Type.Literal(true) },
    { title, description: `The ${object} is deleted and its files removed.` },
  );
}

/**
 * One of these strings, as `{ type: "string", enum: [...] }` (what OpenAPI clients understand best)
 * with the union of the values as its static type.
 */
export function Literals<const T extends readonly string[]>(values: T, options: Record<string, unknown> = {}): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}
