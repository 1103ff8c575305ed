/**
 * A small go-bexpr subset for the fake's `?filter=`: selectors (`Meta.pool`, `JobID`), `==`, `!=`,
 * `matches`, `not matches`, `contains`, `"v" in Sel`, `is empty`, `is not empty`, `and`, `or`, `not` and
 * parentheses. Enough for what our client sends; anything else is a 400, as Nomad answers a bad filter.
 */
export type Predicate = (object: unknown) => boolean;

export class FilterSyntaxError extends Error {}

const tokenPattern = /\s*(?:("(?:[^"\\]|\\.)*"|`[^`]*`)|(==|!=|\(|\))|([A-Za-z_][A-Za-z0-9_.\-\[\]]*)|(-?\d+(?:\.\d+)?))/y;

function tokenize(source: string): string[] {
  const tokens: string[] = [];
  tokenPattern.lastIndex = 0;
  while (tokenPattern.lastIndex < source.length) {
    if (/^\s*$/.test(source.slice(tokenPattern.lastIndex))) break;
    const match = tokenPattern.exec(source);
    if (match === null) throw new FilterSyntaxError(`unexpected input at ${tokenPattern.lastIndex}`);
    tokens.push(match[1] ?? match[2] ?? match[3] ?? match[4] ?? "");
  }
  return tokens;
}

export function compileFilter(source: string): Predicate {
  const tokens = tokenize(source);
  let position = 0;
  const peek = (): string | undefined => tokens[position];
  const next = (): string => {
    const token = tokens[position++];
    if (token === undefined) throw new FilterSyntaxError("unexpected end of filter");
    return token;
  };
  const literal = (token: string): unknown => {
    if (token.startsWith('"')) return JSON.parse(token) as string;
    if (token.startsWith("`")) return token.slice(1, -1);
    if (token === "true" || token === "false") return token === "true";
    if (/^-?\d/.test(token)) return Number(token);
    throw new FilterSyntaxError(`expected a value, got ${token}`);
  };
  const isLiteral = (token: string | undefined): boolean => token !== undefined && /^["`\d-]|^(true|false)$/.test(token);

  const comparison = (): Predicate => {
    const first = next();
    if (isLiteral(first)) {
      const value = literal(first);
      const negate = peek() === "not" ? (next(), true) : false;
      if (next() !== "in") throw new FilterSyntaxError("expected 'in'");
      const path = next();
      return (object) => contains(select(object, path), value) !== negate;
    }
    const path = first;
    const operator = next();
    if (operator === "is") {
      const negate = peek() === "not" ? (next(), true) : false;
      if (next() !== "empty") throw new FilterSyntaxError("expected 'empty'");
      return (object) => isEmpty(select(object, path)) !== negate;
    }
    const negate = operator === "not";
    const op = negate ? next() : operator;
    const value = literal(next());
    switch (op) {
      case "==":
        return (object) => String(select(object, path)) === String(value);
      case "!=":
        return (object) => String(select(object, path)) !== String(value);
      case "matches": {
        const regex = new RegExp(String(value));
        return (object) => regex.test(String(select(object, path) ?? "")) !== negate;
      }
      case "contains":
        return (object) => contains(select(object, path), value) !== negate;
      default:
        throw new FilterSyntaxError(`unsupported operator ${op}`);
    }
  };
  const unary = (): Predicate => {
    if (peek() === "not") {
      next();
      const inner = unary();
      return (object) => !inner(object);
    }
    if (peek() === "(") {
      next();
      const inner = or();
      if (next() !== ")") throw new FilterSyntaxError("expected ')'");
      return inner;
    }
    return comparison();
  };
  const and = (): Predicate => {
    const parts = [unary()];
    while (peek() === "and") (next(), parts.push(unary()));
    return (object) => parts.every((part) => part(object));
  };
  const or = (): Predicate => {
    const parts = [and()];
    while (peek() === "or") (next(), parts.push(and()));
    return (object) => parts.some((part) => part(object));
  };
  const predicate = or();
  if (position !== tokens.length) throw new FilterSyntaxError(`unexpected ${tokens[position]}`);
  return predicate;
}

function select(object: unknown, path: string): unknown {
  let current = object;
  for (const key of path.split(".")) {
    if (typeof current !== "object" || current === null) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

function contains(container: unknown, value: unknown): boolean {
  if (Array.isArray(container)) return container.some((item) => String(item) === String(value));
  if (typeof container === "string") return container.includes(String(value));
  if (typeof container === "object" && container !== null) return Object.hasOwn(container, String(value));
  return false;
}

function isEmpty(value: unknown): boolean {
  if (value === undefined || value === null || value === "") return true;
  if (Array.isArray(value)) return value.length === 0;
  return typeof value === "object" && Object.keys(value).length === 0;
}
