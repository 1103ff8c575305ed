/**
 * The shell run in a slot to set up and verify a SWE-smith task. Values reach the scripts as environment
 * variables, never spliced into the text, so no row can inject shell.
 */
import { shellQuote } from "../shell.ts";

/**
 * Setup: a bare cache per repository under $HERMES_CACHE_DIR/repos (created and fetched under an exclusive
 * flock, so the slots of a sandbox share one clone), then a detached `git worktree` at the task's commit in
 * $HERMES_WORKSPACE/<name>. A SWE-smith task branch (TASK_BRANCH) is fetched with its parent, the bug commit the
 * tests are restored from, to the ref CHECKOUT names.
 *
 * Under bubblewrap every slot sees its workspace at the same path (/workspace), so the bare repository's
 * worktree records would collide by path, and `git worktree prune` run from one slot would delete the records
 * of the other slots' live worktrees. So each record is tagged with its slot (a `hermes-slot` file), its
 * `gitdir` back-pointer (a file git only reads to prune and list) is made unique to the slot, automatic pruning
 * is off, and a slot removes only its own earlier records: this is what makes a slot whose workspace was wiped
 * by a reset set up cleanly again. The checked-out commit is pinned under refs/hermes/ so gc never drops it.
 *
 * Inputs: REPO_URL, CHECKOUT (commit-ish), TASK_BRANCH (empty for a commit), CACHE_KEY, WORKTREE (directory name),
 * SLOT_KEY.
 */
export const SETUP_SCRIPT = String.raw`set -euo pipefail
export GIT_TERMINAL_PROMPT=0 GIT_LFS_SKIP_SMUDGE=1
: "$HERMES_CACHE_DIR" "$HERMES_WORKSPACE" # set -u: both must be set
cache="$HERMES_CACHE_DIR/repos"
bare="$cache/$CACHE_KEY.git"
target="$HERMES_WORKSPACE/$WORKTREE"
mkdir -p "$cache/.locks"
exec 9>"$cache/.locks/$CACHE_KEY.lock"
flock 9
if [ ! -f "$bare/HEAD" ]; then
  rm -rf "$bare"
  git init -q --bare "$bare"
  git -C "$bare" config gc.worktreePruneExpire never
fi
if git -C "$bare" remote get-url origin >/dev/null 2>&1; then
  git -C "$bare" remote set-url origin "$REPO_URL"
else
  git -C "$bare" remote add origin "$REPO_URL"
fi
for marker in "$bare"/worktrees/*/hermes-slot; do
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$SLOT_KEY" ]; then rm -rf "$(dirname "$marker")"; fi
done
rm -rf "$target"
if [ -n "$TASK_BRANCH" ]; then
  git -C "$bare" rev-parse -q --verify "$CHECKOUT~1^{commit}" >/dev/null \
    || git -C "$bare" fetch -q --depth 2 origin "+refs/heads/$TASK_BRANCH:$CHECKOUT"
elif ! git -C "$bare" cat-file -e "$CHECKOUT^{commit}" 2>/dev/null; then
  git -C "$bare" fetch -q --depth 1 origin "$CHECKOUT" 2>/dev/null \
    || git -C "$bare" fetch -q --prune origin '+refs/heads/*:refs/heads/*' '+refs/tags/*:refs/tags/*'
fi
commit="$(git -C "$bare" rev-parse --verify "$CHECKOUT^{commit}")"
git -C "$bare" update-ref "refs/hermes/$commit" "$commit"
git -C "$bare" worktree add -q -f --detach "$target" "$commit"
record="$(git -C "$target" rev-parse --absolute-git-dir)"
printf '%s\n' "$SLOT_KEY" > "$record/hermes-slot"
printf '%s\n' "$target/.git#$SLOT_KEY" > "$record/gitdir"
printf '%s\n' "$commit"
`;

/** The restore script's exit code when the row's test_patch does not apply to its pristine test files. */
export const TEST_PATCH_DOES_NOT_APPLY = 3;

/**
 * Before verify: the task's test files get their pristine content back, so a "fix" that edits the tests scores
 * nothing. Every git command reads the bare cache directly (never the worktree's .git, which the agent could point
 * elsewhere), with hooks and fsmonitor off. For each listed file (plus every file that differs between the commit
 * the agent was given and the pristine one, e.g. tests a task removed), it prints `changed<TAB>path` when the
 * agent's copy is not the one it was given, then replaces it with the pristine blob (or removes it when the
 * pristine commit has no such file). Then, with APPLY_TEST_PATCH set, it applies the patch on stdin (SWE-bench's
 * test_patch, whose files are among TEST_FILES, so it meets exactly the pristine files).
 *
 * Inputs: CACHE_KEY, WORKTREE, GIVEN (commit-ish checked out for the agent), PRISTINE (commit-ish the tests come
 * from), TEST_FILES (newline-separated paths relative to the repository root), APPLY_TEST_PATCH.
 */
export const RESTORE_TESTS_SCRIPT = String.raw`set -euo pipefail
export GIT_TERMINAL_PROMPT=0
bare="$HERMES_CACHE_DIR/repos/$CACHE_KEY.git"
g() { git --git-dir="$bare" -c core.hooksPath=/dev/null -c core.fsmonitor=false -c core.quotePath=false "$@"; }
given="$(g rev-parse --verify "$GIVEN^{commit}")"
pristine="$(g rev-parse --verify "$PRISTINE^{commit}")"
cd "$HERMES_WORKSPACE/$WORKTREE"
{ printf '%s
' "$TEST_FILES"; g diff --no-renames --name-only "$given" "$pristine"; } | sort -u | while IFS= read -r path; do
  [ -n "$path" ] || continue
  was="$(g rev-parse -q --verify "$given:$path" || true)"
  if [ -L "$path" ] || [ -d "$path" ]; then now=other
  elif [ -f "$path" ]; then now="$(g hash-object --no-filters -- "$path")"
  else now=""; fi
  [ "$now" = "$was" ] || printf 'changed	%s
' "$path"
  rm -rf -- "$path"
  read -r mode _ blob _ < <(g ls-tree "$pristine" -- "$path") || continue
  mkdir -p -- "$(dirname -- "$path")"
  if [ "$mode" = 120000 ]; then ln -s -- "$(g cat-file blob "$blob")" "$path"; else g cat-file blob "$blob" > "$path"; fi
  if [ "$mode" = 100755 ]; then chmod +x -- "$path"; fi
done
if [ -n "$APPLY_TEST_PATCH" ]; then g apply --whitespace=nowarn - || exit ${TEST_PATCH_DOES_NOT_APPLY}; fi
`;

/** Runs `command` in the worktree, inside its .venv when the install step made one. */
export function inWorktree(worktree: string, command: string): string {
  return `cd "$HERMES_WORKSPACE"/${shellQuote(worktree)} && if [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi && ${command}`;
}

/**
 * Python trusts a __pycache__ entry whose recorded source mtime (whole seconds) and size match the source, so a
 * same-size fix written within the second of an earlier import (an earlier verify, the agent's own test run) would
 * be tested as the old bytecode. So tests run from source: the worktree's bytecode is dropped (the .venv keeps its
 * installed packages' bytecode), none is written, and no cache prefix outside the worktree is consulted.
 */
const FROM_SOURCE = [
  "unset PYTHONPYCACHEPREFIX",
  "export PYTHONDONTWRITEBYTECODE=1",
  String.raw`find . -path ./.venv -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +`,
].join(" && ");

/** One chunk of tests: a command line (profiles.ts) run in the worktree, from source. */
export function testChunkCommand(worktree: string, commandLine: string): string {
  return inWorktree(worktree, `${FROM_SOURCE} && ${commandLine}`);
}
