/** `{ ...defaults, ...opts }`: an option with a default is never `undefined`. */
export type WithDefaults<D, O> = Omit<O, keyof D> & {
  [K in keyof D]: K extends keyof O ? Exclude<O[K], undefined> | D[K] : D[K];
};

/**
 * middy-style options: `{ ...defaults, ...opts }`, where the `defaults` object is also the
 * list of the options a middleware knows (a misspelt option is a deploy-time error, not a
 * silently ignored setting). An option given as `undefined` keeps its default (optional
 * properties may hold `undefined`: `exactOptionalPropertyTypes` is off), so a
 * `{ safetyMs: maybe }` never turns a bound into `NaN`.
 *
 * @param name the middleware, for the message.
 * @param defaults every optional option with its default (`undefined` when it has none).
 * @param opts what the caller passed.
 * @param required options without a default.
 * @throws TypeError naming an option that is neither in `defaults` nor `required`.
 * @example
 * const { includeOutput } = withDefaults("stepFunctionsError", { includeOutput: false }, opts);
 */
export function withDefaults<D extends object, O extends object>(
  name: string,
  defaults: D,
  opts: O,
  required: readonly string[] = [],
): WithDefaults<D, O> {
  for (const key of Object.keys(opts)) {
    if (!Object.hasOwn(defaults, key) && !required.includes(key)) {
      throw new TypeError(`${name}: unknown option ${key}`);
    }
  }
  const given = Object.entries(opts).filter(([, value]) => value !== undefined);
  return { ...defaults, ...Object.fromEntries(given) } as WithDefaults<D, O>;
}
