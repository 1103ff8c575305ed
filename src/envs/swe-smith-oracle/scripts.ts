/**
 * The shell run in a slot to set up and verify a SWE-smith task. Values reach the scripts as environment
 * variables, never spliced into the text, so no row can inject shell.
 */
import { shellQuote } from "../shell.ts";

/** Git with no hook and no fsmonitor: whatever a repository's config or directory holds, git runs nothing else. */
const SAFE_GIT = "git -c core.hooksPath=/dev/null -c core.fsmonitor=false";

/**
 * Setup, first step (trusted, so it can write the cache, which slots see read-only): a bare cache per repository
 * under $HERMES_CACHE_DIR/repos, created and fetched under an exclusive flock so the slots of a sandbox share one
 * clone. A SWE-smith task branch (TASK_BRANCH) is fetched with its parent, the bug commit the tests are restored
 * from, to the ref CHECKOUT names. The commit is pinned under refs/hermes/ so gc never drops it from under the
 * slots' clones, which borrow its objects. Prints the commit.
 *
 * Inputs: REPO_URL, CHECKOUT (commit-ish), TASK_BRANCH (empty for a commit), CACHE_KEY.
 */
export const FETCH_SCRIPT = String.raw`set -euo pipefail
export GIT_TERMINAL_PROMPT=0 GIT_LFS_SKIP_SMUDGE=1
: "$HERMES_CACHE_DIR" # set -u: must be set
git() { command ${SAFE_GIT} "$@"; }
cache="$HERMES_CACHE_DIR/repos"
bare="$cache/$CACHE_KEY.git"
mkdir -p "$cache/.locks"
exec 9>"$cache/.locks/$CACHE_KEY.lock"
flock 9
if [ ! -f "$bare/HEAD" ]; then
  rm -rf "$bare"
  git init -q --bare "$bare"
fi
if git -C "$bare" remote get-url origin >/dev/null 2>&1; then
  git -C "$bare" remote set-url origin "$REPO_URL"
else
  git -C "$bare" remote add origin "$REPO_URL"
fi
if [ -n "$TASK_BRANCH" ]; then
  git -C "$bare" rev-parse -q --verify "$CHECKOUT~1^{commit}" >/dev/null \
    || git -C "$bare" fetch -q --depth 2 origin "+refs/heads/$TASK_BRANCH:$CHECKOUT"
elif ! git -C "$bare" cat-file -e "$CHECKOUT^{commit}" 2>/dev/null; then
  git -C "$bare" fetch -q --depth 1 origin "$CHECKOUT" 2>/dev/null \
    || git -C "$bare" fetch -q --prune origin '+refs/heads/*:refs/heads/*' '+refs/tags/*:refs/tags/*'
fi
commit="$(git -C "$bare" rev-parse --verify "$CHECKOUT^{commit}")"
git -C "$bare" update-ref "refs/hermes/$commit" "$commit"
printf '%s\n' "$commit"
`;

/**
 * Setup, second step (a slot command): the agent's repository in $HERMES_WORKSPACE/<name>, with its own .git in
 * the workspace that borrows the cache's objects (an alternates file, as `clone --shared` makes: nothing copied)
 * and its shallow boundary. So git status, add and commit work against a read-only cache, and no slot has
 * anything of its own in the cache for another to touch (a `git worktree` keeps its index and HEAD there). Made
 * under a shared flock, so no fetch rewrites the shallow file meanwhile, and without templates (so no hooks).
 *
 * Inputs: CACHE_KEY, COMMIT (a full commit id, from the first step), WORKTREE (directory name).
 */
export const CHECKOUT_SCRIPT = String.raw`set -euo pipefail
: "$HERMES_CACHE_DIR" "$HERMES_WORKSPACE" # set -u: both must be set
git() { command ${SAFE_GIT} "$@"; }
bare="$HERMES_CACHE_DIR/repos/$CACHE_KEY.git"
target="$HERMES_WORKSPACE/$WORKTREE"
rm -rf "$target"
exec 9<"$HERMES_CACHE_DIR/repos/.locks/$CACHE_KEY.lock"
flock -s 9
git init -q --template= "$target"
mkdir -p "$target/.git/objects/info"
printf '%s\n' "$bare/objects" > "$target/.git/objects/info/alternates"
if [ -f "$bare/shallow" ]; then cp "$bare/shallow" "$target/.git/shallow"; fi
git -C "$target" checkout -q --detach "$COMMIT"
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
g() { ${SAFE_GIT} --git-dir="$bare" -c core.quotePath=false "$@"; }
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
