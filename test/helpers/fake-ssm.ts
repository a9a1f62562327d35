/**
 * SSM Parameter Store faked at the wire: `GetParameter` in the JSON 1.1 protocol
 * (`X-Amz-Target: AmazonSSM.GetParameter`) on 127.0.0.1, spoken to by the real SDK client
 * (SigV4 checked). What the deployed runtime reads from SSM: the policy document
 * (`BSSH_POLICY_PARAMETER`) and known hosts (`BSSH_KNOWN_HOSTS_PARAMETER`).
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeSsm {
  url: string;
  port: number;
  parameters: Map<string, string>;
  close(): Promise<void>;
}

export async function startFakeSsm(): Promise<FakeSsm> {
  const parameters = new Map<string, string>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      res.setHeader("content-type", "application/x-amz-json-1.1");
      if (!String(req.headers.authorization).startsWith("AWS4-HMAC-SHA256")) {
        res.writeHead(400).end(JSON.stringify({ __type: "MissingAuthenticationTokenException" }));
        return;
      }
      const target = req.headers["x-amz-target"];
      if (target !== "AmazonSSM.GetParameter") {
        res
          .writeHead(400)
          .end(JSON.stringify({ __type: "UnknownOperationException", message: String(target) }));
        return;
      }
      const { Name } = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { Name: string };
      const value = parameters.get(Name);
      if (value === undefined) {
        res.writeHead(400).end(JSON.stringify({ __type: "ParameterNotFound", message: Name }));
        return;
      }
      res.writeHead(200).end(
        JSON.stringify({
          Parameter: {
            Name,
            Type: "String",
            Value: value,
            Version: 1,
            ARN: `arn:aws:ssm:us-east-1:123456789012:parameter${Name.startsWith("/") ? "" : "/"}${Name}`,
            DataType: "text",
          },
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    parameters,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
