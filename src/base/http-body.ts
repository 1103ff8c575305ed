import type { IncomingMessage } from "node:http";
import { HttpError } from "./errors.ts";

/** The largest request body a server of ours reads (a scored group, a file written into a slot). */
export const MAX_JSON_BODY_BYTES = 64 * 1024 * 1024;

/**
 * A request's JSON body, `undefined` when empty. A body over `maxBytes` is a 413 (`HR_BODY_TOO_LARGE`) as soon as its
 * Content-Length or the bytes read so far say so; the rest is read and dropped, never kept, so one huge request
 * costs bandwidth, not memory, and the client still gets its answer.
 */
export function readJsonBody(request: IncomingMessage, maxBytes = MAX_JSON_BODY_BYTES): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const tooLarge = () => {
      request.removeAllListeners("data").removeAllListeners("end");
      request.resume();
      reject(new HttpError("HR_BODY_TOO_LARGE", `request body is over ${maxBytes} bytes`));
    };
    if (Number(request.headers["content-length"]) > maxBytes) return tooLarge();
    const chunks: Buffer[] = [];
    let size = 0;
    request.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) return tooLarge();
      chunks.push(chunk);
    });
    request.once("error", reject);
    request.once("end", () => {
      if (size === 0) return resolve(undefined);
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      } catch {
        reject(new HttpError("HR_BAD_REQUEST", "body is not JSON"));
      }
    });
  });
}
