import { Agent, createServer, get, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LeakGauge } from "../../functions/metrics/leak-gauge.ts";

describe("LeakGauge", () => {
  it("takes the first count as the container's baseline and lowers it when sockets close", () => {
    // Prepare
    let sockets = 2;
    const gauge = new LeakGauge({
      activeResources: () => [...Array(sockets).fill("TCPSocketWrap"), "TCPServerWrap", "Timeout"],
    });

    // Act + Assess
    expect(gauge.measure()).toBe(0); // runtime's own sockets at the first invocation
    sockets = 3;
    expect(gauge.measure()).toBe(1);
    sockets = 1;
    expect(gauge.measure()).toBe(0); // one baseline socket closed: the baseline follows
    sockets = 2;
    expect(gauge.measure()).toBe(1);
  });

  describe("with an SDK agent mid-request", () => {
    let server: Server;
    let port: number;
    let release: () => void = () => {};

    beforeAll(async () => {
      server = createServer((_req, res) => {
        release = () => res.end("done");
      });
      server.on("connection", (s) => s.unref());
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      port = (server.address() as AddressInfo).port;
    });

    afterAll(async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    it("does not count the in-use sockets of an excluded agent, nor its idle ones", async () => {
      // Prepare
      const agent = new Agent({ keepAlive: true });
      const gauge = new LeakGauge();
      gauge.excludeAgent(agent);
      const baseline = gauge.measure();

      // Act: a request in flight on the agent's socket.
      const done = new Promise<void>((resolve, reject) => {
        get({ host: "127.0.0.1", port, agent }, (res) => {
          res.resume();
          res.on("end", resolve);
        }).on("error", reject);
      });
      await new Promise((resolve) => server.once("request", resolve));
      const inFlight = gauge.measure();
      release();
      await done;
      await new Promise((resolve) => setImmediate(resolve));
      const idle = gauge.measure();
      agent.destroy();

      // Assess
      expect(baseline).toBe(0);
      expect(inFlight).toBe(0);
      expect(idle).toBe(0);
    });

    it("counts the same in-flight socket when its agent is not excluded", async () => {
      // Prepare
      const agent = new Agent({ keepAlive: true });
      const gauge = new LeakGauge();
      gauge.measure();

      // Act
      const done = new Promise<void>((resolve, reject) => {
        get({ host: "127.0.0.1", port, agent }, (res) => {
          res.resume();
          res.on("end", resolve);
        }).on("error", reject);
      });
      await new Promise((resolve) => server.once("request", resolve));
      const inFlight = gauge.measure();
      release();
      await done;
      agent.destroy();

      // Assess
      expect(inFlight).toBe(1);
    });
  });
});
