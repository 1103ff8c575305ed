/** Each `flag <from> <to>` pair of a bwrap argv as "from -> to", in order (e.g. every --ro-bind of a slot plan). */
export const bindsOf = (args: string[], flag: string): string[] =>
  args.flatMap((arg, index) => (arg === flag ? [args.slice(index + 1, index + 3).join(" -> ")] : []));
