/**
 * The shell run in a slot to set up and verify a SWE-smith task. Values reach the scripts as environment
 * variables, never spliced into the text, so no row can inject shell.
 */
import { shellQuote } from "../shell.ts";

/** Git with no hook and no fsmonitor: whatever a repository's config or directory holds, git runs nothing else. */
const SAFE_GIT = "git -c core.hooksPath=/dev/null -c core.fsmonitor=false";

/**
 * Where a task's dependency environment lives in the cache, as shell: `$HERMES_CACHE_DIR/envs/<ENV_KEY>-<w>`, w the
 * workspace's last path component. Installs are editable, so they point into the tree they were made in: every
 * bwrap slot sees its worktree at the same /workspace/<name> and shares one environment; without isolation each
 * slot's workspace is its own path (slots/<n>), so each slot gets its own.
 */
const ENV_DIR = `envdir="$HERMES_CACHE_DIR/envs/$ENV_KEY-\${HERMES_WORKSPACE##*/}"`;

/**
 * The agent's repository at commit $commit of $bare in $HERMES_WORKSPACE/$WORKTREE, with its own .git that borrows
 * the cache's objects (an alternates file, as `clone --shared` makes: nothing copied) and its shallow boundary: git
 * status, add and commit work against a read-only cache, and no slot has anything of its own in the cache for another to touch (a
 * `git worktree` keeps its index and HEAD there). No lock: git replaces `shallow` and adds packs by rename, and
 * the cache never runs gc (gc.auto=0), so a concurrent fetch cannot pull objects from under it. No templates (so
 * no hooks), and two git processes, the fewest that make a checkout.
 */
const CHECKOUT_TREE = String.raw`target="$HERMES_WORKSPACE/$WORKTREE"
if [ -e "$target" ]; then rm -rf "$target"; fi
git init -q --template= "$target"
printf '%s\n' "$bare/objects" > "$target/.git/objects/info/alternates"
if [ -f "$bare/shallow" ]; then IFS= read -r -d '' shallow < "$bare/shallow" || true; printf '%s' "$shallow" > "$target/.git/shallow"; fi
git -C "$target" checkout -q --detach "$commit"`;

/**
 * The commits a task needs besides CHECKOUT, as rev-parse arguments in $parent: a task branch's parent, the bug
 * commit the tests are restored from. Unquoted where used, so empty means none; a task ref has no blank or glob
 * character (item.ts).
 */
const TASK_COMMITS = String.raw`parent=""
if [ -n "$TASK_BRANCH" ]; then parent="$CHECKOUT~1^{commit}"; fi`;

/**
 * Setup, when the checkout found the cache lacking (trusted, so it can write the cache, which slots see read-only):
 * a bare cache per repository under $HERMES_CACHE_DIR/repos shared by the slots of a sandbox. When the task's
 * commits are there already (only its dependency environment was missing) one git process checks that and nothing
 * is locked; else the fetch runs under an exclusive flock, held only while fetching. A SWE-smith task branch (TASK_BRANCH) is fetched
 * with its parent, the bug commit the tests are restored from, to the ref CHECKOUT names. A fetched commit is pinned
 * under refs/hermes/ so no prune drops it from under the slots' clones, which borrow its objects. Prints the commit,
 * then, with ENV_KEY set, whether the task's dependency environment is `ready` or needs an `install`.
 *
 * Inputs: REPO_URL, CHECKOUT (commit-ish), TASK_BRANCH (empty for a commit), CACHE_KEY, ENV_KEY (empty: no install).
 */
export const FETCH_SCRIPT = String.raw`set -euo pipefail
export GIT_TERMINAL_PROMPT=0 GIT_LFS_SKIP_SMUDGE=1
: "$HERMES_CACHE_DIR" # set -u: must be set
git() { command ${SAFE_GIT} "$@"; }
cache="$HERMES_CACHE_DIR/repos"
bare="$cache/$CACHE_KEY.git"
${TASK_COMMITS}
if ! found="$(git --git-dir="$bare" rev-parse "$CHECKOUT^{commit}" $parent 2>/dev/null)"; then
  mkdir -p "$cache/.locks"
  exec 9>"$cache/.locks/$CACHE_KEY.lock"
  flock 9
  if [ ! -f "$bare/HEAD" ]; then
    rm -rf "$bare"
    git init -q --bare "$bare"
    git -C "$bare" config gc.auto 0
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
  found="$(git -C "$bare" rev-parse --verify "$CHECKOUT^{commit}")"
  git -C "$bare" update-ref "refs/hermes/$found" "$found"
  exec 9>&-
fi
read -r commit <<< "$found"
printf '%s\n' "$commit"
if [ -n "$ENV_KEY" ]; then
  ${ENV_DIR}
  if [ -f "$envdir/ready" ]; then echo ready; else echo install; fi
fi
`;

/**
 * Setup, install step (trusted; only when the fetch step said `install`): builds the task's dependency environment
 * once per (sandbox, repository, commit, install command). Under an exclusive flock, so concurrent first
 * trajectories of a task wait on one install and then find it ready. The command runs in a checkout of the task at
 * the path the slots see their worktree at (under bwrap the trusted step's own /workspace, a tmpfs it drops after),
 * with HERMES_VENV naming where it installs (the default makes a virtualenv there), and pip's download cache in the
 * sandbox cache. Only a command that succeeded marks the environment ready; a failed one is removed.
 *
 * Inputs: CACHE_KEY, COMMIT, WORKTREE, ENV_KEY, INSTALL_COMMAND.
 */
export const INSTALL_SCRIPT = String.raw`set -euo pipefail
: "$HERMES_CACHE_DIR" "$HERMES_WORKSPACE" # set -u: both must be set
git() { command ${SAFE_GIT} "$@"; }
${ENV_DIR}
bare="$HERMES_CACHE_DIR/repos/$CACHE_KEY.git"
commit="$COMMIT"
mkdir -p "$HERMES_CACHE_DIR/envs"
exec 9>"$envdir.lock"
flock 9
if [ -f "$envdir/ready" ]; then exit 0; fi
rm -rf "$envdir"
mkdir -p "$envdir"
${CHECKOUT_TREE}
cd "$target"
export HERMES_VENV="$envdir/venv" PIP_CACHE_DIR="$HERMES_CACHE_DIR/pip"
bash -c "$INSTALL_COMMAND" || { status=$?; rm -rf "$envdir"; exit "$status"; }
touch "$envdir/ready"
`;

/** The checkout script's exit code when the cache lacks the task's commits or its dependency environment. */
export const CACHE_LACKS_TASK = 75;

/**
 * Setup, first step (a slot command; also the last, when the cache lacked something): the agent's checkout (see
 * CHECKOUT_TREE), with `.venv` linking to the task's dependency environment when it has one (read-only to the
 * slot, as the whole cache is). When the cache lacks the commit, the parent of a task branch, or the environment,
 * it exits CACHE_LACKS_TASK having changed nothing, and the trusted steps fill the cache. So the common setup is one
 * command: bash and three git processes.
 *
 * Inputs: CACHE_KEY, CHECKOUT (commit-ish), TASK_BRANCH (empty for a commit), WORKTREE (directory name), ENV_KEY
 * (empty: no install).
 */
export const CHECKOUT_SCRIPT = String.raw`set -euo pipefail
: "$HERMES_CACHE_DIR" "$HERMES_WORKSPACE" # set -u: both must be set
git() { command ${SAFE_GIT} "$@"; }
bare="$HERMES_CACHE_DIR/repos/$CACHE_KEY.git"
${TASK_COMMITS}
if ! found="$(git --git-dir="$bare" rev-parse "$CHECKOUT^{commit}" $parent 2>/dev/null)"; then
  echo "the cache lacks $CHECKOUT" >&2
  exit ${CACHE_LACKS_TASK}
fi
read -r commit <<< "$found"
if [ -n "$ENV_KEY" ]; then
  ${ENV_DIR}
  if [ ! -f "$envdir/ready" ]; then echo "the cache lacks the dependency environment" >&2; exit ${CACHE_LACKS_TASK}; fi
fi
${CHECKOUT_TREE}
if [ -n "$ENV_KEY" ]; then ln -s "$envdir/venv" "$target/.venv"; fi
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
