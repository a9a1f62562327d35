/**
 * The dependency lab's servers, hosted by the fault farm (farm-server.ts) like every other
 * fault server, so the test process holds only client sockets:
 *
 * - `awsBackend`: one stand-in per AWS dependency — dynalite (DynamoDB, with the idempotency
 *   and breaker tables), s3rver (S3, the spill bucket), and the wire-level fakes of Secrets
 *   Manager, SSM and CloudWatch `PutMetricData`. `seed` puts a secret or a parameter.
 * - `faultProxy`: a {@link FaultProxy} in front of one backend; its fault is switched now, or
 *   armed on a target to switch when the command starts (`exec`) or ends (`exit`).
 * - `depTarget`: the SSH target of one row, an ssh2 Server whose exec fires the armed faults
 *   and counts execs (the truth `commandStarted` is checked against).
 */
import { FakeCloudWatch } from "../functions/metrics-cloudwatch-server.ts";
import { startDynalite } from "../helpers/dynalite.ts";
import { startFakeSecretsManager } from "../helpers/fake-secrets-manager.ts";
import { startFakeSsm } from "../helpers/fake-ssm.ts";
import { startS3rver } from "../helpers/s3rver.ts";
import { type ExecContext, startSsh2Server } from "../helpers/ssh2-server.ts";
import { type Dependency, FaultProxy, type ProxyMode } from "./dependency-proxy.ts";

/** Tables and bucket the lab's backends hold (the runtime's configuration names them). */
export const LAB_STORES = {
  idempotencyTable: "bssh-idempotency",
  breakerTable: "bssh-breaker",
  spillBucket: "bssh-spill",
} as const;

/** When an armed fault switches on, relative to the remote command. */
export type FaultMoment = "exec" | "exit";

/** Specs of the dependency lab's farm servers (part of the farm's `FaultServerSpec`). */
export type DependencyServerSpec =
  | { kind: "awsBackend"; dependency: Dependency }
  | { kind: "faultProxy"; dependency: Dependency; targetPort: number; mode?: ProxyMode }
  /** `bytes`: stdout the command writes (0: `ok\n`), then exit 0. */
  | { kind: "depTarget"; bytes: number };

/** What the farm keeps of a dependency-lab server besides its port and close(). */
export interface DependencyHosted {
  port: number;
  hostKeyFingerprint?: string;
  close(): Promise<void>;
  proxy?: FaultProxy;
  target?: DependencyTarget;
  seed?(name: string, value: string): void;
}

/** A row's SSH target: fires armed faults at `exec` / `exit`, counts execs. */
export class DependencyTarget {
  execs = 0;
  readonly #armed: { proxy: FaultProxy; mode: ProxyMode; at: FaultMoment }[] = [];

  arm(proxy: FaultProxy, mode: ProxyMode, at: FaultMoment): void {
    this.#armed.push({ proxy, mode, at });
  }

  async fire(at: FaultMoment): Promise<void> {
    for (const a of this.#armed) if (a.at === at) await a.proxy.setMode(a.mode);
  }
}

export async function createDependencyServer(
  spec: DependencyServerSpec,
): Promise<DependencyHosted> {
  switch (spec.kind) {
    case "awsBackend":
      return backend(spec.dependency);
    case "faultProxy": {
      const proxy = await FaultProxy.start(spec.dependency, spec.targetPort, spec.mode);
      return { port: proxy.port, proxy, close: () => proxy.close() };
    }
    case "depTarget": {
      const target = new DependencyTarget();
      const bytes = spec.bytes;
      const server = await startSsh2Server({
        exec: async (ctx: ExecContext) => {
          target.execs++;
          // A fault that could not be switched on fails its row's checks (nothing named);
          // say why here rather than leave a rejection in the farm.
          const fire = (at: FaultMoment) =>
            target.fire(at).catch((err: unknown) => {
              console.error(`fault lab: switching the fault at ${at} failed:`, err);
            });
          await fire("exec");
          if (bytes > 0) await ctx.flood(bytes);
          else ctx.stdout("ok\n");
          await fire("exit");
          if (ctx.channel.destroyed) return;
          ctx.exit(0);
          ctx.close();
        },
      });
      return {
        port: server.port,
        hostKeyFingerprint: server.hostKeyFingerprint,
        target,
        close: () => server.close(),
      };
    }
  }
}

const portOf = (url: string) => Number(new URL(url).port);

async function backend(dependency: Dependency): Promise<DependencyHosted> {
  switch (dependency) {
    case "secretsmanager": {
      const fake = await startFakeSecretsManager();
      return {
        port: portOf(fake.url),
        close: () => fake.close(),
        seed: (name, value) => {
          fake.secrets.set(name, value);
          fake.calls.length = 0; // the soak seeds per session: keep the log from growing
        },
      };
    }
    case "ssm": {
      const fake = await startFakeSsm();
      return {
        port: fake.port,
        close: () => fake.close(),
        seed: (name, value) => fake.parameters.set(name, value),
      };
    }
    case "dynamodb": {
      const dynamo = await startDynalite();
      await dynamo.createTable(LAB_STORES.idempotencyTable, "id", "expiration");
      await dynamo.createTable(LAB_STORES.breakerTable, "host", "expiresAt");
      return { port: portOf(dynamo.endpoint), close: () => dynamo.close() };
    }
    case "s3": {
      const s3 = await startS3rver(LAB_STORES.spillBucket);
      return { port: portOf(s3.endpoint), close: () => s3.close() };
    }
    case "cloudwatch": {
      const cw = await FakeCloudWatch.start();
      return {
        port: portOf(cw.endpoint),
        close: () => cw.close(),
        seed: () => {
          cw.calls.length = 0;
        },
      };
    }
  }
}
