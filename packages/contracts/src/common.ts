import { Type, type TLiteral, type TSchema, type TUnion } from 'typebox';

export const Timestamp = Type.String({ format: 'date-time', description: 'ISO 8601, UTC' });
export const NullableTimestamp = Type.Union([Timestamp, Type.Null()]);

export const PAGE_LIMIT_DEFAULT = 20;
export const PAGE_LIMIT_MAX = 100;

export const PageQuery = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: PAGE_LIMIT_MAX, default: PAGE_LIMIT_DEFAULT }),
    after: Type.Optional(Type.String({ minLength: 1, maxLength: 80, description: 'Cursor: `nextCursor` of the previous page.' })),
  },
  { additionalProperties: false },
);

/** `{ data, hasMore, nextCursor }`: the envelope of every list. */
export function Page<T extends TSchema>(item: T) {
  return Type.Object({
    data: Type.Array(item),
    hasMore: Type.Boolean(),
    nextCursor: Type.Union([Type.String(), Type.Null()]),
  });
}

export const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 80 }) });

/** A union of string literals whose static type is the union of the values (not `never`). */
export function Literals<const T extends readonly string[]>(values: T, options: Record<string, unknown> = {}): TUnion<[TLiteral<T[number]>]> {
  return Type.Union(values.map((v) => Type.Literal(v)) as never, options) as never;
}
