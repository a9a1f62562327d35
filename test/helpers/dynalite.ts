/**
 * A real DynamoDB-compatible server (dynalite, in memory) on 127.0.0.1 for the idempotency and
 * breaker tests, with the real SDK v3 client pointed at it.
 */
import type { AddressInfo } from "node:net";
import {
  CreateTableCommand,
  DynamoDBClient,
  UpdateTimeToLiveCommand,
} from "@aws-sdk/client-dynamodb";
import dynalite from "dynalite";

export interface LocalDynamo {
  client: DynamoDBClient;
  endpoint: string;
  /** Creates a pay-per-request table with a string hash key (and a TTL attribute). */
  createTable(name: string, key: string, ttlAttribute?: string): Promise<void>;
  close(): Promise<void>;
}

export async function startDynalite(): Promise<LocalDynamo> {
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = new DynamoDBClient({
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
    maxAttempts: 1,
  });
  return {
    client,
    endpoint,
    createTable: async (name, key, ttlAttribute) => {
      await client.send(
        new CreateTableCommand({
          TableName: name,
          AttributeDefinitions: [{ AttributeName: key, AttributeType: "S" }],
          KeySchema: [{ AttributeName: key, KeyType: "HASH" }],
          BillingMode: "PAY_PER_REQUEST",
        }),
      );
      if (ttlAttribute) {
        await client
          .send(
            new UpdateTimeToLiveCommand({
              TableName: name,
              TimeToLiveSpecification: { AttributeName: ttlAttribute, Enabled: true },
            }),
          )
          // dynalite does not implement TTL; the table works without it.
          .catch(() => undefined);
      }
    },
    close: async () => {
      client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
