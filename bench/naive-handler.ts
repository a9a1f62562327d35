/**
 * The naive anchor of the cold-start bench: what a first version of this function looks like —
 * the SDK client and ssh2 imported at the top, one Secrets Manager read, one ssh2 session, no
 * deadline, policy, audit or metrics. Bundled and measured beside the real task handler.
 */
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { Client } from "ssh2";

const secrets = new SecretsManagerClient({});

export const handler = async (event: {
  host: string;
  port: number;
  username: string;
  command: string;
}): Promise<{ exitCode: number | null }> => {
  const out = await secrets.send(new GetSecretValueCommand({ SecretId: "bounded-ssh/default" }));
  const { privateKey } = JSON.parse(out.SecretString ?? "{}") as { privateKey: string };
  return new Promise((resolve, reject) => {
    const client = new Client();
    client
      .on("ready", () => {
        client.exec(event.command, (err, stream) => {
          if (err) return reject(err);
          stream.resume();
          stream.on("exit", (code: number | null) => {
            client.end();
            resolve({ exitCode: code });
          });
        });
      })
      .on("error", reject)
      .connect({ host: event.host, port: event.port, username: event.username, privateKey });
  });
};
