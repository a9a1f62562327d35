/**
 * Least privilege and workflow identity in the synthesized template (issue 23): the functions'
 * DynamoDB grants are exactly the item actions the code sends, and each state machine runs as
 * its own role whose trust is bound to that state machine.
 */
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  BREAKER_TABLE_ACTIONS,
  IDEMPOTENCY_TABLE_ACTIONS,
} from "../../cdk/constructs/fleet-state.ts";
import { synth, synthOnce } from "./synth.ts";

const { template } = synthOnce();
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

interface Statement {
  Effect: string;
  Action: string | string[];
  Resource?: unknown;
  Principal?: unknown;
  Condition?: Record<string, Record<string, unknown>>;
}
type Resources = Record<string, { Type: string; Properties: Record<string, unknown> }>;

const resources = template.toJSON().Resources as Resources;
const actions = (s: Statement): string[] => (Array.isArray(s.Action) ? s.Action : [s.Action]);
const logicalIdOf = (prefix: string, type?: string): string => {
  const ids = Object.keys(resources).filter(
    (id) => id.startsWith(prefix) && (type === undefined || resources[id]!.Type === type),
  );
  expect(ids, `one resource whose logical id starts with ${prefix}`).toHaveLength(1);
  return ids[0]!;
};

/** Every identity-policy statement in the template, with the roles it is attached to. */
function policyStatements(): { roles: string[]; statement: Statement }[] {
  const out: { roles: string[]; statement: Statement }[] = [];
  for (const r of Object.values(resources)) {
    if (r.Type !== "AWS::IAM::Policy") continue;
    const roles = (r.Properties.Roles as { Ref: string }[]).map((x) => x.Ref);
    const doc = r.Properties.PolicyDocument as { Statement: Statement[] };
    for (const statement of doc.Statement) out.push({ roles, statement });
  }
  return out;
}

/** The table a statement's resources name (by logical id), or undefined. */
function tableOf(s: Statement): string | undefined {
  const text = JSON.stringify(s.Resource ?? "");
  return /"(FleetState(?:Idempotency|Breaker)[A-Za-z0-9]*)"/.exec(text)?.[1];
}

describe("DynamoDB grants", () => {
  const idempotency = logicalIdOf("FleetStateIdempotency");
  const breaker = logicalIdOf("FleetStateBreaker");

  it("allow exactly the item actions the code sends, on each table's own ARN, and nothing else", () => {
    const dynamo = policyStatements().filter(({ statement }) =>
      actions(statement).some((a) => a.startsWith("dynamodb:")),
    );
    const byTable = new Map<string, Set<string>>();
    for (const { statement, roles } of dynamo) {
      expect(statement.Effect).toBe("Allow");
      const table = tableOf(statement);
      expect(
        table,
        `a DynamoDB statement names one of the stack's tables: ${JSON.stringify(statement)}`,
      ).toBeDefined();
      // The table ARN itself: no index/*, no stream/*.
      expect(JSON.stringify(statement.Resource)).not.toMatch(/index|stream/);
      for (const role of roles) {
        const key = `${role} ${table}`;
        const set = byTable.get(key) ?? new Set<string>();
        for (const a of actions(statement)) set.add(a);
        byTable.set(key, set);
      }
    }
    const expected = new Map<string, string[]>([
      [idempotency, [...IDEMPOTENCY_TABLE_ACTIONS].sort()],
      [breaker, [...BREAKER_TABLE_ACTIONS].sort()],
    ]);
    const functionRoles = [
      logicalIdOf("ApiHandlerRole", "AWS::IAM::Role"),
      logicalIdOf("TaskHandlerRole", "AWS::IAM::Role"),
    ];
    expect([...byTable.keys()].sort()).toEqual(
      functionRoles.flatMap((role) => [`${role} ${breaker}`, `${role} ${idempotency}`]).sort(),
    );
    for (const [key, set] of byTable) {
      expect([...set].sort(), key).toEqual(expected.get(key.split(" ")[1]!));
    }
  });

  it("grant no Scan, Query, Batch*, stream read or DescribeTable anywhere in the template", () => {
    const all = policyStatements().flatMap(({ statement }) => actions(statement));
    const forbidden = all.filter((a) =>
      /^dynamodb:(Scan|Query|Batch|GetRecords|GetShardIterator|DescribeStream|ListStreams|DescribeTable|ConditionCheckItem|\*)/.test(
        a,
      ),
    );
    expect(forbidden).toEqual([]);
  });

  it("match the code: every DynamoDB Command the breaker and Powertools' persistence layer send", () => {
    const sent = (...files: string[]): string[] => {
      const names = new Set<string>();
      for (const file of files) {
        for (const m of readFileSync(path.join(ROOT, file), "utf8").matchAll(
          /\b([A-Z][A-Za-z]+)Command\b/g,
        )) {
          if (/Item$/.test(m[1]!)) names.add(`dynamodb:${m[1]}`);
        }
      }
      return [...names].sort();
    };
    expect(sent("functions/breaker/host-breaker.ts")).toEqual([...BREAKER_TABLE_ACTIONS].sort());
    expect(
      sent(
        "functions/idempotency/idempotency.ts",
        "node_modules/@aws-lambda-powertools/idempotency/lib/esm/persistence/DynamoDBPersistenceLayer.js",
      ),
    ).toEqual([...IDEMPOTENCY_TABLE_ACTIONS].sort());
    // No other DynamoDB Command anywhere the functions import from.
    const others = readFileSync(path.join(ROOT, "functions/runtime/aws-clients.ts"), "utf8");
    expect(others.match(/\b(Scan|Query|Batch[A-Za-z]*)Command\b/g) ?? []).toEqual([]);
  });
});

describe("workflow identity", () => {
  const machines = Object.entries(resources).filter(
    ([, r]) => r.Type === "AWS::StepFunctions::StateMachine",
  );
  const roleOf = (machine: { Properties: Record<string, unknown> }): string =>
    (machine.Properties.RoleArn as { "Fn::GetAtt": [string, string] })["Fn::GetAtt"][0];

  it("gives each state machine its own role", () => {
    expect(machines).toHaveLength(2);
    const roles = machines.map(([, m]) => roleOf(m));
    expect(new Set(roles).size).toBe(2);
    for (const role of roles) expect(resources[role]!.Type).toBe("AWS::IAM::Role");
  });

  it("binds each role's trust to its own state machine (aws:SourceArn, aws:SourceAccount)", () => {
    for (const [id, machine] of machines) {
      const name = machine.Properties.StateMachineName as string;
      const trust = resources[roleOf(machine)]!.Properties.AssumeRolePolicyDocument as {
        Statement: Statement[];
      };
      expect(trust.Statement, id).toHaveLength(1);
      const [statement] = trust.Statement;
      expect(statement!.Effect).toBe("Allow");
      expect(statement!.Action).toBe("sts:AssumeRole");
      expect(statement!.Principal).toEqual({ Service: "states.amazonaws.com" });
      expect(statement!.Condition?.StringEquals).toEqual({
        "aws:SourceAccount": { Ref: "AWS::AccountId" },
      });
      const arns = statement!.Condition?.ArnLike?.["aws:SourceArn"] as unknown[];
      expect(arns).toHaveLength(2);
      // Built from the fixed name (no reference to the state machine: no cycle), exactly it and
      // its versions/aliases, never a wildcard over names.
      const text = arns.map((a) => JSON.stringify(a));
      expect(text[0]).toMatch(new RegExp(`:stateMachine:${name}"\\]\\]}$`));
      expect(text[1]).toMatch(new RegExp(`:stateMachine:${name}:\\*"\\]\\]}$`));
      expect(JSON.stringify(arns)).not.toContain(id);
    }
  });

  it("lets only the two workflow roles invoke the task function", () => {
    const task = logicalIdOf("TaskHandler", "AWS::Lambda::Function");
    const invokers = policyStatements()
      .filter(
        ({ statement }) =>
          actions(statement).some((a) => a.startsWith("lambda:Invoke")) &&
          JSON.stringify(statement.Resource).includes(`"${task}"`),
      )
      .flatMap(({ roles }) => roles);
    expect([...new Set(invokers)].sort()).toEqual(machines.map(([, m]) => roleOf(m)).sort());
    // No resource policy opens it to anyone else.
    const permissions = Object.values(resources).filter(
      (r) =>
        r.Type === "AWS::Lambda::Permission" &&
        JSON.stringify(r.Properties.FunctionName).includes(`"${task}"`),
    );
    expect(permissions).toEqual([]);
  });

  it("synthesizes without a dependency cycle with a stage (named state machines)", () => {
    const { template: staged } = synth({ stage: "prod" });
    const trust = Object.values(staged.findResources("AWS::IAM::Role"))
      .map((r) => JSON.stringify(r.Properties.AssumeRolePolicyDocument))
      .filter((t) => t.includes("states.amazonaws.com"));
    expect(trust).toHaveLength(2);
    expect(trust.some((t) => t.includes(":stateMachine:prod-bounded-ssh-SingleHost"))).toBe(true);
    expect(trust.some((t) => t.includes(":stateMachine:prod-bounded-ssh-Fleet"))).toBe(true);
  });
});
