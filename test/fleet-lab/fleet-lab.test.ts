/**
 * The fleet lab's CI variant (`npm run fleet-lab` runs 1,000 hosts): the synthesized fleet
 * definition on aws-local-stepfunctions with the real task handler over 100 hosts on distinct
 * loopback addresses (127.R.a.b:22), 5 % tarpits and closed ports, throttles injected at the
 * Lambda boundary. Needs root (port 22).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fivePercentDead } from "../helpers/loopback-fleet.ts";
import {
  fleetLabProblems,
  LAB_ITEMS,
  LAB_READ_ITEMS,
  type LabReport,
  runFleetLab,
  substituteS3Map,
  throttledAttempt,
} from "./lab.ts";

const HOSTS = 100;
/** 1 attempt + the throttle retrier's 6. */
const THROTTLE_ATTEMPTS = 7;
let report: LabReport;
const scenario = (key: string) => {
  const found = report.rows.find((r) => r.key === key);
  if (!found) throw new Error(`no scenario ${key}`);
  return found;
};

/** Invocations Lambda refuses for host `i` before one runs (or all of them). */
const refusedFor = (i: number) => {
  let n = 0;
  while (n < THROTTLE_ATTEMPTS && throttledAttempt(i, n + 1)) n++;
  return n;
};

beforeAll(async () => {
  report = await runFleetLab({ hosts: HOSTS });
}, 120_000);

afterAll(() => {
  // The lab closes its servers itself; nothing of it may stay open.
  const open = process
    .getActiveResourcesInfo()
    .filter((r) => r === "TCPServerWrap" || r === "TCPSocketWrap");
  expect(open).toEqual([]);
});

describe(`fleet lab, ${HOSTS} hosts on distinct loopback addresses`, () => {
  it("passes its own checks (the ones `npm run fleet-lab` exits non-zero on)", () => {
    expect(fleetLabProblems(report)).toEqual([]);
  });

  it("hostsKey fleet: every result kept in S3, once per host; the output is a bounded pointer", () => {
    const row = scenario("s3");
    expect(row.execution).toBe("SUCCEEDED");
    expect(report.s3).toMatchObject({ records: HOSTS, distinctHosts: HOSTS, missing: 0 });
    expect(report.s3.manifestKey).toMatch(/^fleet-results\/[0-9a-f-]{36}\/manifest\.json$/);
    // Bounded: no per-host data, only where the results are.
    expect(row.outputBytes).toBeLessThan(1_024);
    expect(JSON.stringify(row.output)).not.toContain(LAB_ITEMS);
    expect(row.output).toMatchObject({
      resultWriter: { ResultWriterDetails: { Key: report.s3.manifestKey } },
    });
    // Every host's outcome is its own: dead hosts end in their phase, healthy ones ran.
    const dead = Array.from({ length: HOSTS }, (_, i) => fivePercentDead(i));
    expect(report.s3.byRole).toEqual({
      healthy: {
        succeeded: dead.filter((r) => r === "healthy").length - 1,
        "error:Lambda.TooManyRequestsException": 1,
      },
      tarpit: { "timed_out:BannerTimeout": dead.filter((r) => r === "tarpit").length },
      closed: { "error:ConnectRefused": dead.filter((r) => r === "closed").length },
    });
  });

  it("throttled children never fail the run: each throttle is retried, one past its retries is that host's outcome", () => {
    const row = scenario("s3");
    const expected = Array.from({ length: HOSTS }, (_, i) => refusedFor(i)).reduce((a, b) => a + b);
    expect(expected).toBeGreaterThan(10);
    expect(row.throttled).toBe(expected);
    expect(row.execution).toBe("SUCCEEDED");
  });

  it.each([
    [0, 1],
    [1, 6],
  ] as const)(
    "the wrong command stops at the canary: maxErrors %i, %i hosts ran",
    (maxErrors, ran) => {
      const row = scenario(`wrong-${maxErrors}`);
      const throttled = Array.from({ length: ran }, (_, i) => refusedFor(i)).reduce(
        (a, b) => a + b,
      );
      expect(row).toMatchObject({
        execution: "SUCCEEDED",
        hosts: HOSTS,
        notStarted: HOSTS - ran,
        invocations: ran + throttled,
        throttled,
        outcomes: { succeeded: 0, failed: ran, timed_out: 0, error: 0 },
      });
      expect(row.output).toMatchObject({ ended: "maxErrorsExceeded", errors: ran });
    },
  );

  it("the right command passes the canary: every batch runs under a 10 % budget the dead hosts stay inside", () => {
    const row = scenario("canary-ok");
    const roles = Array.from({ length: HOSTS }, (_, i) => fivePercentDead(i));
    const tarpits = roles.filter((r) => r === "tarpit").length;
    const closed = roles.filter((r) => r === "closed").length;
    const dead = tarpits + closed;
    expect(row).toMatchObject({ execution: "SUCCEEDED", notStarted: 0 });
    // The dead hosts and the one throttled past its retries are the budget's errors.
    expect(row.output).toMatchObject({ ended: "completed", errors: dead + 1 });
    expect(row.outcomes).toEqual({
      succeeded: HOSTS - dead - 1,
      failed: 0,
      timed_out: tarpits,
      error: closed + 1,
    });
  });

  it("hostsKey under maxErrors 0: the wrong command stops after at most MaxConcurrency hosts, their records kept", () => {
    const row = scenario("s3-wrong-budget");
    const check = report.s3Budget["s3-wrong-budget"];
    // The first 10 children start at once; the first failure stops the dispatch; the running
    // ones finish.
    expect(row.children).toBe(10);
    const throttled = Array.from({ length: 10 }, (_, i) => refusedFor(i)).reduce((a, b) => a + b);
    expect(row).toMatchObject({
      execution: "SUCCEEDED",
      notStarted: HOSTS - 10,
      // Host 7 is refused on every attempt (7 throttles, no run); the others run once.
      invocations: 9 + throttled,
      throttled,
    });
    expect(row.invocations).toBeLessThan(HOSTS / 4);
    expect(row.output).toMatchObject({
      ended: "maxErrorsExceeded",
      maxErrors: 0,
      error: { Error: "States.ExceedToleratedFailureThreshold" },
      results: { prefix: "fleet-results/" },
    });
    expect(row.outputBytes).toBeLessThan(1_024);
    // Host 7 is throttled on every attempt: its record is an `error`, the others `failed`.
    expect(row.outcomes).toMatchObject({ failed: 9, error: 1, succeeded: 0 });
    expect(check).toMatchObject({ records: 10, distinctHosts: 10, missing: HOSTS - 10 });
  });

  it('hostsKey under maxErrors "10%": the right command runs every host, every result kept', () => {
    const row = scenario("s3-ok-budget");
    const roles = Array.from({ length: HOSTS }, (_, i) => fivePercentDead(i));
    const tarpits = roles.filter((r) => r === "tarpit").length;
    const closed = roles.filter((r) => r === "closed").length;
    expect(row).toMatchObject({ execution: "SUCCEEDED", notStarted: 0, children: HOSTS });
    expect(row.output).toMatchObject({ resultWriter: { ResultWriterDetails: {} } });
    expect(row.output).not.toHaveProperty("ended");
    // Those that did not succeed are kept in FAILED_0.json with their outcome record.
    expect(row.outcomes).toMatchObject({
      succeeded: HOSTS - tarpits - closed - 1,
      timed_out: tarpits,
      error: closed + 1,
    });
    expect(report.s3Budget["s3-ok-budget"]).toMatchObject({
      records: HOSTS,
      distinctHosts: HOSTS,
      missing: 0,
    });
  });

  it("hostsKey with canary batches, the wrong command: stops after the canary's first batch, the rest never starts", () => {
    const row = scenario("s3-canary-wrong");
    const check = report.s3Canary["s3-canary-wrong"];
    const throttled = refusedFor(0);
    expect(row).toMatchObject({
      execution: "SUCCEEDED",
      hosts: HOSTS,
      notStarted: HOSTS - 1,
      invocations: 1 + throttled,
      throttled,
      children: 0,
    });
    expect(row.outcomes).toEqual({ succeeded: 0, failed: 1, timed_out: 0, error: 0 });
    expect(row.output).toMatchObject({
      ended: "maxErrorsExceeded",
      stoppedBy: "canary",
      rest: "never started",
      canary: { ended: "maxErrorsExceeded", errors: 1, batches: 1, maxErrors: 0 },
    });
    // The canary read its 6 hosts (1 + 5) from the list; the 5 of its second batch never started.
    expect(check).toMatchObject({ canaryHosts: 6, canaryRecords: 1, restInvoked: 0, ranTwice: 0 });
    expect(check?.rest).toBeUndefined();
    expect(row.outputBytes).toBeLessThan(4_096);
  });

  it("hostsKey with canary batches, the right command: the canary inline, the rest from S3, every host once", () => {
    const row = scenario("s3-canary-ok");
    const check = report.s3Canary["s3-canary-ok"];
    const roles = Array.from({ length: HOSTS }, (_, i) => fivePercentDead(i));
    const tarpits = roles.filter((r) => r === "tarpit").length;
    const closed = roles.filter((r) => r === "closed").length;
    const canaryDead = roles.slice(0, 6).filter((r) => r !== "healthy").length;
    expect(row).toMatchObject({ execution: "SUCCEEDED", notStarted: 0, children: HOSTS });
    // Every host has one outcome record: the canary's 6 in the output, the others in S3.
    expect(row.outcomes).toEqual({
      succeeded: HOSTS - tarpits - closed - 1,
      failed: 0,
      timed_out: tarpits,
      error: closed + 1,
    });
    expect(check).toMatchObject({
      canaryHosts: 6,
      canaryRecords: 6,
      distinctHosts: HOSTS,
      missing: 0,
      ranTwice: 0,
      restInvoked: HOSTS - 6,
    });
    // The rest's map run has a child per item; the canary's 6 only returned a marker.
    expect(check?.rest).toMatchObject({ records: HOSTS, skipped: 6, distinctHosts: HOSTS - 6 });
    expect(row.output).toMatchObject({
      canary: { ended: "completed", batches: 2, errors: canaryDead },
      skip: 6,
      resultWriter: { ResultWriterDetails: { Key: check?.rest?.manifestKey } },
    });
    expect(row.output).not.toHaveProperty("ended");
  });

  it("hostsKey with canary batches under a count: the canary passes, the rest stops on what it left of the budget", () => {
    const row = scenario("s3-canary-budget");
    const check = report.s3Canary["s3-canary-budget"];
    const canaryDead = Array.from({ length: 6 }, (_, i) => fivePercentDead(i)).filter(
      (r) => r !== "healthy",
    ).length;
    expect(canaryDead).toBeLessThanOrEqual(3);
    expect(row.execution).toBe("SUCCEEDED");
    expect(row.output).toMatchObject({
      ended: "maxErrorsExceeded",
      maxErrors: 3,
      error: { Error: "States.ExceedToleratedFailureThreshold" },
      results: { prefix: "fleet-results/" },
      canary: { ended: "completed", errors: canaryDead, batches: 2 },
    });
    // The rest's threshold was 3 less the canary's errors: more than 3 hosts in all did not
    // succeed, and the canary's hosts ran once (skipped in the rest).
    const notSucceeded = row.hosts - row.notStarted - (row.outcomes.succeeded ?? 0);
    expect(notSucceeded).toBeGreaterThan(3);
    expect(check).toMatchObject({ canaryHosts: 6, canaryRecords: 6, ranTwice: 0 });
    expect(check?.rest?.skipped).toBe(6);
    expect(row.outputBytes).toBeLessThan(4_096);
  });

  it("changed nothing in the synthesized definition but the S3 maps' reader, writer and stood-in map runs", () => {
    const standInMap = (state: string) =>
      [
        "ItemProcessor",
        "ItemReader",
        "ItemSelector",
        "MaxConcurrencyPath",
        "Resource",
        "ResultWriter",
        state.endsWith("WithBudget")
          ? ["ToleratedFailureCountPath", "ToleratedFailurePercentage"]
          : ["ToleratedFailurePercentagePath"],
        "Type",
      ]
        .flat()
        .map((f) => `${state}.${f}`);
    expect(report.substituted).toEqual(
      [
        "ReadCanaryHosts.ItemProcessor",
        "ReadCanaryHosts.ItemReader",
        "ReadCanaryHosts.MaxConcurrencyPath",
        "ReadCanaryHosts.Resource",
        "ReadCanaryHosts.Type",
        "RunFleetFromS3.ItemReader",
        "RunFleetFromS3.ItemsPath",
        "RunFleetFromS3.ResultWriter",
        ...standInMap("RunFleetFromS3WithBudget"),
        ...standInMap("RunFleetFromS3WithPercentBudget"),
        // The rest after a canary (no budget): in the map run's stand-in too, its selector
        // reading each child's real $$.Map.Item.Index.
        ...standInMap("RunRestFromS3"),
        ...standInMap("RunRestFromS3WithBudget"),
        ...standInMap("RunRestFromS3WithPercentBudget"),
      ].sort(),
    );
  });

  it("substitutes only the map's ItemReader and ResultWriter", () => {
    const definition = {
      StartAt: "M",
      States: {
        M: {
          Type: "Map",
          ItemReader: {
            Resource: "arn:aws:states:::s3:getObject",
            Parameters: { Bucket: "b", "Key.$": "$.k" },
          },
          ResultWriter: {
            Resource: "arn:aws:states:::s3:putObject",
            Parameters: { Bucket: "b", Prefix: "p" },
          },
          ResultPath: "$.r",
          ItemProcessor: { StartAt: "P", States: { P: { Type: "Pass", End: true } } },
          End: true,
        },
      },
    };
    const out = substituteS3Map(definition);
    const { ItemReader: _r, ResultWriter: _w, ...kept } = definition.States.M;
    expect(out.definition).toEqual({
      StartAt: "M",
      States: { M: { ...kept, ItemsPath: `$.${LAB_ITEMS}` } },
    });
    expect(out).toMatchObject({
      mapState: "M",
      reader: { bucket: "b", keyPath: "$.k" },
      writer: { bucket: "b", prefix: "p" },
      resultPath: "$.r",
    });
    expect(definition.States.M.ItemReader).toBeDefined();
  });

  it("replaces a map that only reads the list's first items (MaxItemsPath, no ResultWriter) by the reader's stand-in", () => {
    const reader = {
      Type: "Map",
      ItemReader: {
        Resource: "arn:aws:states:::s3:getObject",
        ReaderConfig: { InputType: "JSON", MaxItemsPath: "$.k" },
        Parameters: { Bucket: "b", "Key.$": "$.key" },
      },
      ItemProcessor: { StartAt: "P", States: { P: { Type: "Pass", End: true } } },
      ResultPath: "$.first",
      Next: "M",
    };
    const definition = {
      StartAt: "R",
      States: {
        R: reader,
        M: {
          Type: "Map",
          ItemReader: { Resource: "x", Parameters: { Bucket: "b", "Key.$": "$.key" } },
          ResultWriter: { Resource: "y", Parameters: { Bucket: "b", Prefix: "p" } },
          ResultPath: "$.r",
          ItemProcessor: { StartAt: "P", States: { P: { Type: "Pass", End: true } } },
          End: true,
        },
      },
    };
    const out = substituteS3Map(definition);
    expect(out.definition.States).toMatchObject({
      R: { Type: "Task", Resource: LAB_READ_ITEMS, ResultPath: "$.first", Next: "M" },
      M: { Type: "Map", ItemsPath: `$.${LAB_ITEMS}` },
    });
    expect(out.readers).toEqual([
      { state: "R", reader: { bucket: "b", keyPath: "$.key" }, maxItemsPath: "$.k" },
    ]);
    expect(out.mapState).toBe("M");
    expect(out.budgeted).toEqual([]);
  });
});
