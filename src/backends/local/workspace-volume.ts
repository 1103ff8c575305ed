import { execFile } from "node:child_process";
import { accessSync, constants, existsSync, readFileSync } from "node:fs";
import { mkdir, open } from "node:fs/promises";
import { posix } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/**
 * A slot workspace of a fixed size: a sparse ext4 image file loop-mounted at the slot's directory, so a slot that
 * fills its workspace gets ENOSPC there while other slots and the host keep their space. The image takes only what
 * is written; it stays across leases (reset empties it) and across a server restart, and goes with the sandbox.
 * Needs root and a loop device (/dev/loop-control); otherwise workspaces share the sandbox's filesystem.
 */

/** Why size-capped workspaces cannot be made here, or undefined when they can. */
export function workspaceVolumesUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "loop mounts need root";
  if (!existsSync("/dev/loop-control")) return "no /dev/loop-control";
  try {
    accessSync("/dev/loop-control", constants.W_OK);
  } catch {
    return "/dev/loop-control is not writable";
  }
  return undefined;
}

/** Where a slot's image lives: next to the slots, never inside one. */
export function workspaceImage(sandboxRoot: string, slot: number): string {
  return posix.join(sandboxRoot, "volumes", `${slot}.ext4`);
}

/**
 * Mounts the slot's image at `mountPoint`, making the image first when there is none (owned by `owner` at its root,
 * no reserved blocks, no journal: a workspace holds nothing that must survive a crash).
 */
export async function mountWorkspaceVolume(
  image: string,
  mountPoint: string,
  bytes: number,
  owner: { uid: number; gid: number } | undefined,
): Promise<void> {
  if (isMountPoint(mountPoint)) return;
  if (!existsSync(image)) {
    await mkdir(posix.dirname(image), { recursive: true });
    const handle = await open(image, "w", 0o600);
    try {
      await handle.truncate(bytes);
    } finally {
      await handle.close();
    }
    const rootOwner = owner === undefined ? [] : ["-E", `root_owner=${owner.uid}:${owner.gid},nodiscard`];
    await run("mkfs.ext4", ["-q", "-F", "-m", "0", "-O", "^has_journal", ...rootOwner, image]);
  }
  await mkdir(mountPoint, { recursive: true });
  await run("mount", ["-o", "loop,nosuid,nodev", image, mountPoint]);
}

/** Unmounts every mount at or under `directory` (deepest first); lazily when one is still busy. */
export async function unmountUnder(directory: string): Promise<void> {
  const mounts = mountPoints().filter((point) => point === directory || point.startsWith(`${directory}/`));
  for (const point of mounts.sort((a, b) => b.length - a.length)) {
    await run("umount", [point]).catch(() => run("umount", ["-l", point]));
  }
}

function isMountPoint(path: string): boolean {
  return mountPoints().includes(path);
}

/** Mount points from /proc/self/mountinfo (field 5, with the kernel's octal escapes undone). */
function mountPoints(): string[] {
  let text: string;
  try {
    text = readFileSync("/proc/self/mountinfo", "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .map((line) => line.split(" ")[4])
    .filter((point): point is string => point !== undefined)
    .map((point) => point.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))));
}
