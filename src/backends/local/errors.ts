import { errorMessage, SandboxError, type SandboxErrorKind } from "../../base/errors.ts";

const kindByCode: Record<string, SandboxErrorKind> = {
  ENOSPC: "capacity",
  EDQUOT: "capacity",
  ENOMEM: "capacity",
  EMFILE: "transient",
  ENFILE: "transient",
  EAGAIN: "transient",
  EBUSY: "transient",
  EINTR: "transient",
  EACCES: "configuration",
  EPERM: "configuration",
  EISDIR: "configuration",
  ENOTDIR: "configuration",
  EINVAL: "configuration",
  ELOOP: "configuration",
};

/**
 * The local backend's one error classifier. A missing path means the sandbox is gone (its directory was
 * removed) unless the caller knows the sandbox exists (`missing`: a missing file in a live workspace).
 */
export function classifyLocalError(error: unknown, what: string, missing: SandboxErrorKind = "gone"): SandboxError {
  if (error instanceof SandboxError) return error;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const kind = code === "ENOENT" ? missing : ((code !== undefined ? kindByCode[code] : undefined) ?? "transient");
  const reason = code === "ENOENT" ? "no such file or directory" : errorMessage(error);
  return new SandboxError(kind, `${what}: ${reason}`, { cause: error });
}

/** A file a request named does not exist (the sandbox itself does): HTTP 404 on the sandbox server. */
export function isMissingFile(error: unknown): boolean {
  return (
    error instanceof SandboxError && error.kind === "configuration" && (error.cause as NodeJS.ErrnoException | undefined)?.code === "ENOENT"
  );
}
