import { Duration } from "aws-cdk-lib";
import { describe, expect, it } from "vitest";
import { validateTimeoutOrder } from "../../cdk/config.ts";
import { synth } from "./synth.ts";

const ok = {
  edge: "API Gateway integration",
  edgeTimeout: Duration.seconds(29),
  functionTimeout: Duration.seconds(25),
  sessionBudget: Duration.seconds(20),
  reserve: Duration.seconds(2),
};

describe("validateTimeoutOrder", () => {
  it("accepts edge > Lambda > session + reserve", () => {
    expect(() => validateTimeoutOrder([ok])).not.toThrow();
  });

  it("rejects a Lambda timeout equal to the edge, naming both values", () => {
    expect(() => validateTimeoutOrder([{ ...ok, functionTimeout: Duration.seconds(29) }])).toThrow(
      /API Gateway integration timeout \(29000 ms\) must be greater than the Lambda timeout \(29000 ms\)/,
    );
  });

  it("rejects a session + reserve that does not fit in the Lambda timeout", () => {
    expect(() => validateTimeoutOrder([{ ...ok, sessionBudget: Duration.seconds(23) }])).toThrow(
      /Lambda timeout \(25000 ms\) must be greater than session budget \+ reserve \(23000 \+ 2000 = 25000 ms\)/,
    );
  });

  it("reports every broken chain at once", () => {
    const task = { ...ok, edge: "Step Functions task", edgeTimeout: Duration.seconds(10) };
    expect(() => validateTimeoutOrder([{ ...ok, reserve: Duration.seconds(10) }, task])).toThrow(
      /API Gateway integration: Lambda timeout[\s\S]*Step Functions task timeout/,
    );
  });
});

describe("synth with a broken timeout order", () => {
  it("fails before producing a template when the task state times out before the Lambda", () => {
    expect(() => synth({ taskTimeouts: { taskTimeout: Duration.seconds(60) } })).toThrow(
      /Step Functions task timeout \(60000 ms\) must be greater than the Lambda timeout \(60000 ms\)/,
    );
  });

  it("fails when the API function outlives API Gateway's integration timeout", () => {
    expect(() => synth({ apiTimeouts: { functionTimeout: Duration.seconds(30) } })).toThrow(
      /timeout order violated/,
    );
  });
});
