/**
 * Secrets Manager faked at the wire: the JSON 1.1 protocol on 127.0.0.1, spoken to by the
 * real SDK client (SigV4 checked). Used by test/functions/secrets-manager.test.ts and the
 * dependency fault lab (test/faults/dependency-farm.ts).
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * Secrets whose id ends in "/slow" never get an answer; those ending in a key of
 * SCRIPTED_ERRORS get that service error.
 */
export const SCRIPTED_ERRORS: Record<string, { status: number; type: string }> = {
  throttled: { status: 400, type: "ThrottlingException" },
  internal: { status: 500, type: "InternalServiceError" },
  denied: { status: 400, type: "AccessDeniedException" },
  undecryptable: { status: 400, type: "DecryptionFailure" },
  deleted: { status: 400, type: "InvalidRequestException" },
};
export interface FakeSecretsManager {
  url: string;
  calls: string[];
  secrets: Map<string, string>;
  close(): Promise<void>;
}

export async function startFakeSecretsManager(): Promise<FakeSecretsManager> {
  const calls: string[] = [];
  const secrets = new Map<string, string>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const target = req.headers["x-amz-target"];
      const { SecretId } = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
        SecretId: string;
      };
      calls.push(`${String(target)} ${SecretId}`);
      if (!String(req.headers.authorization).startsWith("AWS4-HMAC-SHA256")) {
        res.writeHead(403).end();
        return;
      }
      if (SecretId.endsWith("/slow")) return; // never answer
      res.setHeader("content-type", "application/x-amz-json-1.1");
      const scripted = SCRIPTED_ERRORS[SecretId.slice(SecretId.lastIndexOf("/") + 1)];
      if (scripted) {
        res
          .writeHead(scripted.status)
          .end(JSON.stringify({ __type: scripted.type, message: `scripted ${scripted.type}` }));
        return;
      }
      const value = secrets.get(SecretId);
      if (target !== "secretsmanager.GetSecretValue" || value === undefined) {
        res.writeHead(400).end(
          JSON.stringify({
            __type: "ResourceNotFoundException",
            message: "Secrets Manager can't find the specified secret.",
          }),
        );
        return;
      }
      res.writeHead(200).end(
        JSON.stringify({
          ARN: `arn:aws:secretsmanager:us-east-1:123456789012:secret:${SecretId}`,
          Name: SecretId,
          SecretString: value,
          VersionId: "v1",
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls,
    secrets,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
