import { createHash, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { OutputCapture } from "../../lib/session/output-capture.ts";

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("OutputCapture", () => {
  it("keeps everything, with exact count and hash, when the stream fits", () => {
    const cap = new OutputCapture(64);
    cap.write(Buffer.from("hello "));
    cap.write(Buffer.from("wörld"));
    const out = cap.text();
    expect(out.text).toBe("hello wörld");
    expect(out.encoding).toBe("utf8");
    expect(cap.bytes).toBe(Buffer.byteLength("hello wörld"));
    expect(cap.truncated).toBe(false);
    expect(out.sha256).toBe(sha(Buffer.from("hello wörld")));
  });

  it("keeps head and tail exactly and counts and hashes the full stream when over the cap", () => {
    const full = Buffer.from(Array.from({ length: 5000 }, (_, i) => String(i % 10)).join(""));
    const cap = new OutputCapture(100);
    // Uneven chunks exercise the head/tail split inside a chunk.
    for (let i = 0; i < full.length; i += 37) cap.write(full.subarray(i, i + 37));
    const out = cap.text();
    expect(cap.bytes).toBe(5000);
    expect(cap.truncated).toBe(true);
    expect(out.sha256).toBe(sha(full));
    const [head, tail] = out.text.split("\n[bounded-ssh: 4900 bytes omitted]\n");
    expect(head).toBe(full.subarray(0, 50).toString());
    expect(tail).toBe(full.subarray(4950).toString());
  });

  it("reports binary output as base64 so no byte is mangled", () => {
    const bin = randomBytes(40);
    bin[0] = 0xff; // never valid UTF-8
    const cap = new OutputCapture(1000);
    cap.write(bin);
    const out = cap.text();
    expect(out.encoding).toBe("base64");
    expect(Buffer.from(out.text, "base64").equals(bin)).toBe(true);
  });

  it("holds at most the cap in memory for a large flood", () => {
    const cap = new OutputCapture(1024);
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    for (let i = 0; i < 160; i++) cap.write(chunk); // 10 MiB
    expect(cap.bytes).toBe(160 * 64 * 1024);
    const out = cap.text();
    expect(out.text.length).toBeLessThan(1024 + 64);
  });

  it("a tail cut from a chunk keeps a view of a packet-sized chunk, a copy of a huge one", () => {
    // A view costs nothing per chunk (ssh2 hands over one packet per chunk); a copy stops a
    // small tail from pinning a huge chunk's memory until the session ends.
    const small = Buffer.alloc(32 * 1024, 0x61);
    const huge = Buffer.alloc(4 * 1024 * 1024, 0x62);
    const capSmall = new OutputCapture(64 * 1024);
    capSmall.write(Buffer.alloc(32 * 1024, 0x7a)); // fills the head
    capSmall.write(small);
    small.fill(0x63); // the view sees it: no copy was made
    expect(capSmall.text().text.endsWith("c".repeat(32 * 1024))).toBe(true);
    const capHuge = new OutputCapture(64 * 1024);
    capHuge.write(huge);
    huge.fill(0x63); // the copy does not
    const text = capHuge.text().text;
    expect(text.endsWith("b".repeat(32 * 1024))).toBe(true);
    expect(capHuge.bytes).toBe(4 * 1024 * 1024);
  });
});

describe("OutputCapture encoding: JSON never inflates a stream beyond base64's 4/3", () => {
  const encode = (text: string | Buffer) => {
    const capture = new OutputCapture(1024);
    capture.write(Buffer.from(text));
    return capture.text();
  };

  it("keeps ordinary text, newlines and tabs as UTF-8", () => {
    expect(encode("load average: 0.01\n\tok é\n").encoding).toBe("utf8");
  });

  it.each([
    ["NUL bytes", "\u0000".repeat(100)],
    ["an escape sequence", "\u001b[31mred\u001b[0m"],
    ["a C1 control", "a\u0085b"],
    ["text that is mostly quotes", '"'.repeat(100)],
  ])("sends %s as base64, within 4/3 of the bytes", (_, text) => {
    const out = encode(text);
    expect(out.encoding).toBe("base64");
    expect(Buffer.from(out.text, "base64").toString()).toBe(text);
    expect(JSON.stringify(out.text).length).toBeLessThanOrEqual(
      Math.ceil(Buffer.byteLength(text) / 3) * 4 + 2,
    );
  });
});
