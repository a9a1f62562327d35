import { readFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { App } from "aws-cdk-lib";
import { describe, expect, it } from "vitest";
import { BoundedSshStack, deployConfigProps } from "../../cdk/bounded-ssh-stack.ts";
import { loadDeployConfigFile } from "../../cdk/deploy-config.ts";
import { acknowledgementRows, acknowledgementTable } from "./nag-acknowledgements.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const FIXTURE = path.join(ROOT, "test/cdk/fixtures/handler.ts");

/** Cells of a markdown table's body rows (the formatter pads cells; content is what counts). */
function tableCells(table: string): string[][] {
  return table
    .split("\n")
    .slice(2)
    .map((line) =>
      line
        .replace(/^\|/, "")
        .replace(/\|$/, "")
        .split(" | ")
        .map((cell) => cell.trim()),
    );
}

/** docs/deploy.md's acknowledgement table, between its markers. */
function documentedTable(): string {
  const doc = readFileSync(path.join(ROOT, "docs/deploy.md"), "utf8");
  const match =
    /<!-- nag-acknowledgements:start -->\n([\s\S]*?)\n<!-- nag-acknowledgements:end -->/.exec(doc);
  if (!match) throw new Error("docs/deploy.md has no nag-acknowledgements markers");
  return match[1]!.trim();
}

describe("docs/deploy.md", () => {
  it("lists every cdk-nag acknowledgement of the example deployment with its reason", () => {
    // The example config switches on everything conditional (VPC, credential placeholders).
    const app = new App();
    const props = deployConfigProps(
      loadDeployConfigFile(path.join(ROOT, "examples/deploy/example.json")),
    );
    const stack = new BoundedSshStack(app, "Docs", {
      ...props,
      apiEntry: FIXTURE,
      taskEntry: FIXTURE,
    });
    const rows = acknowledgementRows(stack);
    expect(rows.length).toBeGreaterThan(5);
    expect(
      tableCells(documentedTable()),
      "regenerate the table between the markers from acknowledgementTable()",
    ).toEqual(tableCells(acknowledgementTable(rows)));
  });

  it("shows the example deploy config verbatim", () => {
    const doc = readFileSync(path.join(ROOT, "docs/deploy.md"), "utf8");
    const example = readFileSync(path.join(ROOT, "examples/deploy/example.json"), "utf8");
    expect(doc).toContain(example.trim());
  });
});
