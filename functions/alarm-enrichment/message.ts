/**
 * The text of an enriched notification: pure functions, no AWS import. Everything a caller, a
 * target host or a command can influence (host names, addresses, error text, log lines) goes
 * through {@link escapeText}, so no value can start a line, fake a header or hide text; the
 * message never exceeds {@link MESSAGE_CAP_BYTES} and says so when it cut anything; commands
 * appear only as a SHA-256 prefix.
 */
import { createHash } from "node:crypto";

/**
 * Largest message the enrichment publishes (UTF-8 bytes). SNS refuses more than 256 KiB
 * (262,144 bytes, attributes included); email and chat deliveries cut far earlier. 64 KiB
 * leaves room for the subject, message attributes and any envelope a subscriber adds.
 */
export const MESSAGE_CAP_BYTES = 64 * 1024;
/** Longest single value (host name, error text, log line) once escaped. */
export const MAX_VALUE_CHARS = 300;

/**
 * Characters escaped in caller-controlled text: C0 controls (newline, carriage return, tab,
 * escape), DEL, C1 controls, the Unicode line/paragraph separators, bidirectional overrides and
 * isolates, zero-width characters and the BOM, and the backslash itself (so an escape in the
 * message was always written by this function, never forged by the input).
 */
const UNSAFE =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
  /[\\\u0000-\u001f\u007f-\u009f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/g;

/** One line's worth of caller-controlled text: escaped, and cut to `max` characters. */
export function escapeText(value: unknown, max = MAX_VALUE_CHARS): string {
  const s = value === undefined || value === null ? "" : String(value);
  const escaped = s.replace(UNSAFE, (c) => {
    if (c === "\\") return "\\\\";
    if (c === "\n") return "\\n";
    if (c === "\r") return "\\r";
    if (c === "\t") return "\\t";
    const code = c.charCodeAt(0);
    return code <= 0xff
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`;
  });
  if (escaped.length <= max) return escaped;
  // Never cut inside an escape or a surrogate pair.
  let cut = escaped.slice(0, max);
  cut = cut.replace(/\\(?:x[0-9a-f]{0,1}|u[0-9a-f]{0,3})?$/, "");
  if (/[\ud800-\udbff]$/.test(cut)) cut = cut.slice(0, -1);
  return `${cut}...[${s.length} chars]`;
}

/** A command as the message shows it: `sha256:<first 16 hex>`, never its text. */
export function commandHash(command: string): string {
  return `sha256:${createHash("sha256").update(command).digest("hex").slice(0, 16)}`;
}

/** Bytes of a string in UTF-8. */
export function utf8Bytes(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

/** One section of the message: its lines are dropped from the end when the cap is reached. */
export interface Section {
  /** What a dropped line is (e.g. "host rows"), for the truncation line. */
  readonly what: string;
  readonly lines: readonly string[];
}

/**
 * Joins `head`, the sections and `tail` into one message of at most `capBytes`. `head` and
 * `tail` are kept whole (each line already bounded); section lines are kept in order until the
 * next would not fit, and every section that lost lines is named in one explicit
 * `TRUNCATED:` line, placed before the tail (where the link to the full list is).
 */
export function fitMessage(
  head: readonly string[],
  sections: readonly Section[],
  tail: readonly string[],
  capBytes = MESSAGE_CAP_BYTES,
): { message: string; truncated: boolean } {
  // Room for the truncation line, whatever it ends up saying.
  const truncationRoom = 400;
  const fixed = utf8Bytes([...head, ...tail].join("\n")) + 2;
  let budget = capBytes - fixed - truncationRoom;
  const kept: string[] = [];
  const dropped: string[] = [];
  let full = false;
  for (const section of sections) {
    let n = 0;
    for (const line of section.lines) {
      const size = utf8Bytes(line) + 1;
      if (full || size > budget) {
        full = true;
        break;
      }
      budget -= size;
      kept.push(line);
      n++;
    }
    if (n < section.lines.length) {
      dropped.push(`${section.lines.length - n} of ${section.lines.length} ${section.what}`);
    }
  }
  const truncation =
    dropped.length > 0
      ? [
          `TRUNCATED: ${dropped.join(", ")} not shown (message cap ${capBytes} bytes). The Logs Insights link below lists everything.`,
        ]
      : [];
  let message = [...head, ...kept, ...truncation, ...tail].join("\n");
  if (utf8Bytes(message) > capBytes) {
    // Only a head/tail larger than the cap gets here (never with bounded values): cut hard.
    const marker = "\nTRUNCATED: message cut at the cap.";
    const buf = Buffer.from(message, "utf8").subarray(0, capBytes - utf8Bytes(marker));
    message = `${buf.toString("utf8").replace(/\ufffd$/, "")}${marker}`;
    return { message, truncated: true };
  }
  return { message, truncated: dropped.length > 0 };
}

/** CloudWatch console's own escaping of a Logs Insights query detail value. */
function consoleValue(s: string): string {
  return encodeURIComponent(s)
    .replace(/[!'()*~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%/g, "*");
}

/**
 * A CloudWatch console link that opens Logs Insights with the query, its log groups and the
 * alarm's window filled in. `consoleBase` is the console's CloudWatch home with its region
 * (`https://console.aws.amazon.com/cloudwatch/home?region=…`).
 */
export function logsInsightsUrl(
  consoleBase: string,
  query: string,
  logGroups: readonly string[],
  window: { startMs: number; endMs: number },
): string {
  const detail =
    `~(end~'${consoleValue(new Date(window.endMs).toISOString())}` +
    `~start~'${consoleValue(new Date(window.startMs).toISOString())}` +
    `~timeType~'ABSOLUTE~tz~'UTC~editorString~'${consoleValue(query)}` +
    `~source~(${logGroups.map((g) => `~'${consoleValue(g)}`).join("")}))`;
  const fragment = encodeURIComponent(`?queryDetail=${detail}`).replace(/%/g, "$");
  return `${consoleBase}#logsV2:logs-insights${fragment}`;
}

/** The console home (scheme, host, path and query, no fragment) of a console URL. */
export function consoleBaseOf(url: string): string {
  const hash = url.indexOf("#");
  return hash >= 0 ? url.slice(0, hash) : url;
}
