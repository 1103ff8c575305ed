import { InvalidArgumentError } from "commander";

/** Option parsers shared by every role: a bad number is refused by name at parse time, never run as NaN. */
function integerAtLeast(min: number, what: string): (value: string) => number {
  return (value) => {
    const parsed = Number(value);
    if (value.trim() === "" || !Number.isInteger(parsed) || parsed < min) throw new InvalidArgumentError(`must be ${what}`);
    return parsed;
  };
}

export const positiveInteger = integerAtLeast(1, "a positive integer");
export const nonNegativeInteger = integerAtLeast(0, "a non-negative integer");

export function portNumber(value: string): number {
  const parsed = nonNegativeInteger(value);
  if (parsed > 65535) throw new InvalidArgumentError("must be a port number (0-65535)");
  return parsed;
}

/** `k=v,k2=v2` as a label map; an entry without `=` or with an empty key is refused. */
export function labelSet(value: string): Record<string, string> {
  const entries = value.split(",").map((entry) => entry.trim().split("="));
  if (entries.some((entry) => entry.length !== 2 || !entry[0])) throw new InvalidArgumentError("must be labels as key=value,key2=value2");
  return Object.fromEntries(entries);
}
