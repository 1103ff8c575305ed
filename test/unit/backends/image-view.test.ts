import { test } from "node:test";
import assert from "node:assert/strict";
import { buildSlotCommand, resolveInsideWorkspace, BASE_PATH } from "../../../src/backends/isolation.ts";
import { HOST_TOOLS_DIR, imageMountPoints, imageRootArgs, imageWorkdir, type ImageView } from "../../../src/backends/image-view.ts";
import { isSandboxError } from "../../../src/base/errors.ts";
import { bindsOf } from "../../support/bwrap-args.ts";

const hostTools = {
  loader: "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
  libraryDirs: ["/usr/lib/x86_64-linux-gnu"],
  helpers: { prlimit: "/usr/bin/prlimit", setpriv: "/usr/bin/setpriv" },
};
const view: ImageView = { root: "/images/abc/rootfs", env: { PATH: "/opt/conda/bin:/bin", LANG: "C" }, hostTools };

test("an image slot: the image root read-only at /, the workspace at the work dir, the image's Env under the request's", () => {
  const plan = buildSlotCommand({
    sandboxRoot: "/srv/sb",
    slot: 1,
    command: ["python", "-V"],
    env: { LANG: "C.UTF-8" },
    isolation: "bwrap",
    slotUser: "setpriv",
    image: view,
    workdir: "/testbed",
  });
  assert.deepEqual(bindsOf(plan.args, "--ro-bind"), [
    "/images/abc/rootfs -> /",
    "/usr/bin -> /.hermes-host/usr/bin",
    "/usr/lib/x86_64-linux-gnu -> /.hermes-host/usr/lib/x86_64-linux-gnu",
    "/srv/sb/cache -> /cache",
  ]);
  assert.ok(!plan.args.includes("/usr") && !plan.args.includes("/etc"), "none of the host's system dirs");
  assert.deepEqual(bindsOf(plan.args, "--bind"), ["/srv/sb/slots/1 -> /testbed"]);
  assert.equal(plan.args[plan.args.indexOf("--chdir") + 1], "/testbed");
  assert.equal(plan.env.HERMES_WORKSPACE, "/testbed");
  assert.equal(plan.env.LANG, "C.UTF-8", "the request's env over the image's");
  // bwrap is found on the host's PATH; the command gets the image's.
  assert.equal(plan.env.PATH, BASE_PATH);
  assert.deepEqual(plan.args.slice(plan.args.indexOf("--setenv"), plan.args.indexOf("--setenv") + 3), [
    "--setenv",
    "PATH",
    "/opt/conda/bin:/bin",
  ]);
  // The helpers run from the host through its loader; the command itself is the image's.
  const command = plan.args.slice(plan.args.indexOf("--") + 1);
  const viaLoader = [`${HOST_TOOLS_DIR}${hostTools.loader}`, "--library-path", `${HOST_TOOLS_DIR}/usr/lib/x86_64-linux-gnu`];
  assert.deepEqual(command.slice(0, 4), [...viaLoader, `${HOST_TOOLS_DIR}/usr/bin/prlimit`]);
  assert.ok(command.includes(`${HOST_TOOLS_DIR}/usr/bin/setpriv`));
  assert.deepEqual(command.slice(-2), ["python", "-V"]);
});

test("a trusted step of an image sandbox keeps the host's view, at the slots' workspace path", () => {
  const plan = buildSlotCommand({
    sandboxRoot: "/srv/sb",
    slot: 0,
    command: ["git", "fetch"],
    isolation: "bwrap",
    trusted: true,
    image: view,
    workdir: "/testbed",
  });
  assert.ok(bindsOf(plan.args, "--ro-bind-try").includes("/usr -> /usr"));
  assert.ok(!bindsOf(plan.args, "--ro-bind").some((bind) => bind.endsWith("-> /")));
  assert.equal(plan.env.HERMES_WORKSPACE, "/testbed");
  assert.equal(plan.args[plan.args.indexOf("--tmpfs", plan.args.indexOf("/tmp")) + 1], "/testbed");
  assert.equal(plan.env.PATH, BASE_PATH);
});

test("in a container of the image (Modal) the root is / and the sandbox root under it is hidden; no host helpers", () => {
  const args = imageRootArgs({ root: "/", env: {} }, "/hermes");
  assert.deepEqual(args, ["--ro-bind", "/", "/", "--tmpfs", "/hermes"]);
  assert.deepEqual(imageMountPoints({ root: "/", env: {} }, "/testbed"), ["/proc", "/dev", "/tmp", "/cache", "/testbed"]);
  assert.ok(imageMountPoints(view, "/testbed").includes(`${HOST_TOOLS_DIR}/usr/bin`));
});

test("the work dir: an override, else the image's, else /workspace for an image that sets none", () => {
  assert.equal(imageWorkdir("/testbed", undefined), "/testbed");
  assert.equal(imageWorkdir("/testbed", "/srv/work"), "/srv/work");
  assert.equal(imageWorkdir("/", undefined), "/workspace");
});

test("a work dir without an image moves the host view's workspace", () => {
  const plan = buildSlotCommand({ sandboxRoot: "/srv/sb", slot: 2, command: ["pwd"], isolation: "bwrap", workdir: "/testbed" });
  assert.deepEqual(bindsOf(plan.args, "--bind"), ["/srv/sb/slots/2 -> /testbed"]);
  assert.ok(bindsOf(plan.args, "--ro-bind-try").includes("/usr -> /usr"));
  assert.equal(plan.env.HERMES_WORKSPACE, "/testbed");
});

test("absolute paths as the slot sees them resolve into its workspace; an image needs bwrap", () => {
  assert.equal(resolveInsideWorkspace("/srv/sb/slots/0", "/testbed/a/b", "/testbed"), "/srv/sb/slots/0/a/b");
  assert.throws(() => resolveInsideWorkspace("/srv/sb/slots/0", "/etc/passwd", "/testbed"), isSandboxError);
  assert.throws(
    () => buildSlotCommand({ sandboxRoot: "/srv/sb", slot: 0, command: ["true"], isolation: "none", image: view }),
    /needs isolation bwrap/,
  );
});
